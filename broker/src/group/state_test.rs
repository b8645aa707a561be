use super::*;

const T: GroupTimeouts = GroupTimeouts {
    session_ms: 1_000,
    heartbeat_ms: 100,
    rebalance_ms: 5_000,
};

fn tp(topic: &str, partition: u32) -> TopicPartition {
    TopicPartition {
        topic: topic.into(),
        partition,
    }
}

fn topics(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|t| t.to_string()).collect()
}

fn orders(n: u32) -> BTreeMap<String, u32> {
    BTreeMap::from([("orders".to_string(), n)])
}

fn join(g: &mut Group, id: &str, now: i64) -> HeartbeatReply {
    g.heartbeat(
        &Heartbeat {
            member_id: id.into(),
            member_epoch: epoch::JOIN,
            topics: Some(topics(&["orders"])),
            ..Heartbeat::default()
        },
        &orders(6),
        now,
    )
    .unwrap()
}

/// Member `id` leaves for good.
fn leave(g: &mut Group, id: &str, now: i64) -> HeartbeatReply {
    let request = Heartbeat {
        member_id: id.into(),
        member_epoch: epoch::LEAVE,
        ..Heartbeat::default()
    };
    g.heartbeat(&request, &orders(6), now).unwrap()
}

/// A well-behaved member's next heartbeat: its epoch, owning exactly what it
/// was last told.
fn beat(g: &mut Group, id: &str, now: i64) -> Result<HeartbeatReply, GroupError> {
    let m = g.members()[id].clone();
    g.heartbeat(
        &Heartbeat {
            member_id: id.into(),
            member_epoch: i32::try_from(m.epoch).unwrap(),
            owned: Some(m.assigned.clone()),
            ..Heartbeat::default()
        },
        &orders(6),
        now,
    )
}

/// No partition is held (assigned or being released) by two members.
fn check_exclusive(g: &Group) {
    let mut seen = BTreeSet::new();
    for m in g.members().values() {
        for tp in m.assigned.iter().chain(&m.revoking) {
            assert!(
                seen.insert(tp.clone()),
                "{tp} held twice: {:?}",
                g.members()
            );
        }
    }
}

/// Everyone heartbeats in turn until the group is stable; checks exclusivity
/// after every step; returns the rounds it took.
fn settle(g: &mut Group, ids: &[&str], now: i64) -> usize {
    for round in 0..10 {
        if g.state() == GroupState::Stable {
            return round;
        }
        for id in ids {
            beat(g, id, now).unwrap();
            check_exclusive(g);
        }
    }
    panic!("not stable after 10 rounds: {g:?}");
}

fn owned(g: &Group, id: &str) -> Vec<u32> {
    g.members()[id]
        .assigned
        .iter()
        .map(|tp| tp.partition)
        .collect()
}

#[test]
fn three_members_share_six_partitions_two_each() {
    let mut g = Group::new("billing", T);
    assert_eq!(g.state(), GroupState::Empty);
    for id in ["a", "b", "c"] {
        join(&mut g, id, 0);
    }
    settle(&mut g, &["a", "b", "c"], 0);
    assert_eq!(g.epoch(), 3, "one generation per join");
    for id in ["a", "b", "c"] {
        assert_eq!(g.members()[id].assigned.len(), 2, "{id}");
        assert_eq!(g.members()[id].epoch, 3);
    }
}

#[test]
fn a_newcomer_gets_partitions_only_once_their_owner_released_them() {
    let mut g = Group::new("billing", T);
    join(&mut g, "a", 0);
    join(&mut g, "b", 0);
    settle(&mut g, &["a", "b"], 0);
    let (a_before, b_before) = (owned(&g, "a"), owned(&g, "b"));
    assert_eq!(a_before.len() + b_before.len(), 6);
    let reply = join(&mut g, "c", 10);
    assert!(reply.assignment.is_empty(), "a and b still hold everything");
    // a is told to give up one partition; it keeps the other two throughout.
    let told = beat(&mut g, "a", 20).unwrap();
    assert_eq!(told.assignment.len(), 2);
    assert!(told
        .assignment
        .iter()
        .all(|tp| a_before.contains(&tp.partition)));
    assert_eq!(g.members()["a"].revoking.len(), 1);
    assert_eq!(g.state(), GroupState::Reconciling);
    settle(&mut g, &["a", "b", "c"], 30);
    for id in ["a", "b", "c"] {
        assert_eq!(g.members()[id].assigned.len(), 2, "{id}");
    }
    // Sticky: a and b kept two of their own each.
    assert!(owned(&g, "a").iter().all(|p| a_before.contains(p)));
    assert!(owned(&g, "b").iter().all(|p| b_before.contains(p)));
}

#[test]
fn a_silent_member_is_removed_after_its_session_and_its_partitions_move() {
    let mut g = Group::new("billing", T);
    for id in ["a", "b", "c"] {
        join(&mut g, id, 0);
    }
    settle(&mut g, &["a", "b", "c"], 0);
    let epoch = g.epoch();
    // a and b keep heartbeating; c falls silent.
    for now in (100..=900).step_by(100) {
        beat(&mut g, "a", now).unwrap();
        beat(&mut g, "b", now).unwrap();
        assert!(g.expire(&orders(6), now).is_empty());
    }
    assert_eq!(g.expire(&orders(6), 1_001), vec!["c".to_string()]);
    assert_eq!(g.epoch(), epoch + 1);
    settle(&mut g, &["a", "b"], 1_050);
    assert_eq!(owned(&g, "a").len() + owned(&g, "b").len(), 6);
    assert_eq!(owned(&g, "a").len(), 3);
}

#[test]
fn a_member_that_leaves_hands_its_partitions_over_at_once() {
    let mut g = Group::new("billing", T);
    join(&mut g, "a", 0);
    join(&mut g, "b", 0);
    settle(&mut g, &["a", "b"], 0);
    let reply = leave(&mut g, "b", 10);
    assert_eq!(reply.member_epoch, epoch::LEAVE);
    let now = beat(&mut g, "a", 20).unwrap();
    assert_eq!(now.assignment.len(), 6);
    assert_eq!(g.state(), GroupState::Stable);
}

#[test]
fn a_stale_epoch_is_fenced_and_changes_nothing() {
    let mut g = Group::new("billing", T);
    join(&mut g, "a", 0);
    join(&mut g, "b", 0);
    settle(&mut g, &["a", "b"], 0);
    let before = g.clone();
    let stale = Heartbeat {
        member_id: "a".into(),
        member_epoch: 1,
        owned: Some(BTreeSet::from([tp("orders", 5)])),
        ..Heartbeat::default()
    };
    let err = g.heartbeat(&stale, &orders(6), 10).unwrap_err();
    assert!(
        matches!(
            err,
            GroupError::FencedMemberEpoch {
                current: 2,
                given: 1,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(g, before);
    // The epoch before is accepted once from a member whose answer was lost,
    // if it claims nothing it was not given.
    let a = g.members()["a"].clone();
    let retry = Heartbeat {
        member_id: "a".into(),
        member_epoch: i32::try_from(a.previous_epoch).unwrap(),
        owned: Some(a.assigned.clone()),
        ..Heartbeat::default()
    };
    assert_eq!(g.heartbeat(&retry, &orders(6), 20).unwrap().member_epoch, 2);
}

#[test]
fn commits_need_the_members_current_epoch() {
    let mut g = Group::new("billing", T);
    join(&mut g, "a", 0);
    settle(&mut g, &["a"], 0);
    let offsets = BTreeMap::from([(tp("orders", 0), (42, "m".to_string()))]);
    g.commit("a", 1, &offsets, 5).unwrap();
    assert_eq!(g.offsets()[&tp("orders", 0)].offset, 42);
    join(&mut g, "b", 10);
    let before = g.clone();
    let cases = [
        ("a", 0, "StaleMemberEpoch"),
        ("zombie", 1, "UnknownMemberId"),
        ("", -1, "UnknownMemberId"),
    ];
    for (member, epoch, want) in cases {
        let err = g.commit(member, epoch, &offsets, 20).unwrap_err();
        assert!(format!("{err:?}").starts_with(want), "{member}: {err:?}");
        assert_eq!(g, before);
    }
    // With no members, a commit without a member id is an admin's.
    for id in ["a", "b"] {
        leave(&mut g, id, 30);
    }
    g.commit("", -1, &offsets, 40).unwrap();
}

#[test]
fn a_static_member_restarting_takes_its_place_without_a_rebalance() {
    let mut g = Group::new("billing", T);
    let static_join = |g: &mut Group, id: &str, now| {
        g.heartbeat(
            &Heartbeat {
                member_id: id.into(),
                instance_id: Some(format!("pod-{}", &id[..1])),
                member_epoch: epoch::JOIN,
                topics: Some(topics(&["orders"])),
                ..Heartbeat::default()
            },
            &orders(6),
            now,
        )
        .unwrap()
    };
    static_join(&mut g, "a1", 0);
    static_join(&mut g, "b1", 0);
    settle(&mut g, &["a1", "b1"], 0);
    let (epoch, a_owned) = (g.epoch(), g.members()["a1"].assigned.clone());
    // a's process restarts with a new member id, within its session.
    let reply = static_join(&mut g, "a2", 500);
    assert_eq!(g.epoch(), epoch, "no new generation");
    assert_eq!(reply.assignment, a_owned);
    assert_eq!(reply.member_epoch, i32::try_from(epoch).unwrap());
    assert!(!g.members().contains_key("a1"));
    assert_eq!(g.state(), GroupState::Stable);
    // The old id is gone.
    assert!(matches!(
        beat_as(&mut g, "a1", epoch),
        Err(GroupError::UnknownMemberId { .. })
    ));
    // A static member away for longer than its session is removed.
    g.heartbeat(
        &Heartbeat {
            member_id: "b1".into(),
            member_epoch: epoch::STATIC_LEAVE,
            ..Heartbeat::default()
        },
        &orders(6),
        600,
    )
    .unwrap();
    beat(&mut g, "a2", 1_400).unwrap();
    assert_eq!(g.expire(&orders(6), 1_400), vec!["b1".to_string()]);
    assert_eq!(g.epoch(), epoch + 1);
}

fn beat_as(g: &mut Group, id: &str, epoch: u32) -> Result<HeartbeatReply, GroupError> {
    g.heartbeat(
        &Heartbeat {
            member_id: id.into(),
            member_epoch: i32::try_from(epoch).unwrap(),
            ..Heartbeat::default()
        },
        &orders(6),
        0,
    )
}

#[test]
fn a_member_that_never_releases_is_removed_after_the_rebalance_timeout() {
    let mut g = Group::new("billing", T);
    join(&mut g, "a", 0);
    settle(&mut g, &["a"], 0);
    join(&mut g, "b", 0);
    // a heartbeats but keeps claiming everything.
    let all: BTreeSet<TopicPartition> = (0..6).map(|p| tp("orders", p)).collect();
    for now in (0..=5_000).step_by(500) {
        let a = g.members()["a"].clone();
        g.heartbeat(
            &Heartbeat {
                member_id: "a".into(),
                member_epoch: i32::try_from(a.epoch).unwrap(),
                owned: Some(all.clone()),
                ..Heartbeat::default()
            },
            &orders(6),
            now,
        )
        .unwrap();
        beat(&mut g, "b", now).unwrap();
        assert!(g.expire(&orders(6), now).is_empty(), "at {now}");
    }
    assert_eq!(g.expire(&orders(6), 5_001), vec!["a".to_string()]);
    assert_eq!(beat(&mut g, "b", 5_002).unwrap().assignment.len(), 6);
}

#[test]
fn bad_requests_are_refused_and_change_nothing() {
    let mut g = Group::new("billing", T);
    join(&mut g, "a", 0);
    let before = g.clone();
    let cases = [
        (
            Heartbeat {
                member_epoch: epoch::JOIN,
                topics: Some(topics(&["orders"])),
                ..Heartbeat::default()
            },
            "member id",
        ),
        (
            Heartbeat {
                member_id: "b".into(),
                member_epoch: epoch::JOIN,
                ..Heartbeat::default()
            },
            "subscription",
        ),
        (
            Heartbeat {
                member_id: "b".into(),
                member_epoch: epoch::JOIN,
                topics: Some(topics(&[""])),
                ..Heartbeat::default()
            },
            "empty topic",
        ),
        (
            Heartbeat {
                member_id: "b".into(),
                member_epoch: epoch::JOIN,
                topics: Some(topics(&["orders"])),
                assignor: Some(Assignor::Range),
                ..Heartbeat::default()
            },
            "sticky assignor",
        ),
        (
            Heartbeat {
                member_id: "a".into(),
                member_epoch: epoch::STATIC_LEAVE,
                ..Heartbeat::default()
            },
            "static member",
        ),
        (
            Heartbeat {
                member_id: "x".into(),
                member_epoch: 3,
                ..Heartbeat::default()
            },
            "not in group",
        ),
        (
            Heartbeat {
                member_id: "x".into(),
                member_epoch: epoch::LEAVE,
                ..Heartbeat::default()
            },
            "not in group",
        ),
    ];
    for (request, want) in cases {
        let err = g.heartbeat(&request, &orders(6), 10).unwrap_err();
        assert!(err.to_string().contains(want), "{request:?}: {err}");
        assert_eq!(g, before, "{request:?}");
    }
}

#[test]
fn offsets_are_reset_and_groups_deleted_only_when_empty() {
    let mut g = Group::new("billing", T);
    join(&mut g, "a", 0);
    let reset = BTreeMap::from([(tp("orders", 0), 0)]);
    assert!(matches!(
        g.reset_offsets(&reset, 1),
        Err(GroupError::NonEmptyGroup { members: 1, .. })
    ));
    assert!(g.check_empty().is_err());
    leave(&mut g, "a", 2);
    g.reset_offsets(&reset, 3).unwrap();
    assert_eq!(g.offsets()[&tp("orders", 0)].offset, 0);
    assert!(g.check_empty().is_ok());
}

#[test]
fn the_first_member_picks_the_assignor_and_new_partitions_are_assigned() {
    let mut g = Group::new("billing", T);
    g.heartbeat(
        &Heartbeat {
            member_id: "a".into(),
            member_epoch: epoch::JOIN,
            topics: Some(topics(&["orders"])),
            assignor: Some(Assignor::Range),
            ..Heartbeat::default()
        },
        &orders(2),
        0,
    )
    .unwrap();
    assert_eq!(g.assignor(), Assignor::Range);
    let epoch = g.epoch();
    // orders grew to 6 partitions (the helper's metadata): a new generation.
    assert_eq!(beat(&mut g, "a", 1).unwrap().assignment.len(), 6);
    assert_eq!(g.epoch(), epoch + 1);
}

#[test]
fn records_since_a_stored_state_rebuild_it() {
    let mut g = Group::new("billing", T);
    let stored = g.clone();
    join(&mut g, "a", 0);
    settle(&mut g, &["a"], 0);
    let offsets = BTreeMap::from([
        (tp("orders", 0), (7, String::new())),
        (tp("orders", 1), (9, "x".to_string())),
    ]);
    g.commit("a", 1, &offsets, 5).unwrap();
    let records = g.records_since(&stored);
    assert_eq!(records.len(), 3, "{records:?}");
    let mut loaded = Group::new("billing", T);
    for r in &records {
        loaded.replay(r);
    }
    assert_eq!(
        (loaded.epoch(), loaded.assignor()),
        (g.epoch(), g.assignor())
    );
    assert_eq!(loaded.offsets(), g.offsets());
    assert!(loaded.members().is_empty(), "members rejoin");
    // Nothing changed, nothing to store; a heartbeat alone stores nothing.
    beat(&mut g, "a", 10).unwrap();
    let now = g.clone();
    beat(&mut g, "a", 20).unwrap();
    assert!(g.records_since(&now).is_empty());
    // The epoch never goes back on replay; a deletion forgets everything.
    loaded.replay(&GroupRecord::Epoch {
        epoch: 0,
        assignor: Assignor::Range,
    });
    assert_eq!(loaded.epoch(), g.epoch());
    loaded.replay(&GroupRecord::Deleted);
    assert_eq!(loaded, Group::new("billing", T));
}

#[test]
fn a_compacted_log_of_group_records_loads_the_same_groups() {
    let commit = |p: u32, offset: u64| GroupRecord::Offset {
        partition: tp("orders", p),
        committed: CommittedOffset {
            offset,
            metadata: String::new(),
            commit_ms: 0,
        },
    };
    let epoch = |epoch: u32| GroupRecord::Epoch {
        epoch,
        assignor: Assignor::Range,
    };
    let replay = |log: &[(String, GroupRecord)]| {
        let mut groups = BTreeMap::new();
        for (id, record) in log {
            replay_into(&mut groups, id.clone(), record, T);
        }
        groups
    };
    let b = || "billing".to_string();
    let mut log = vec![
        (b(), epoch(3)),
        (b(), commit(0, 5)),
        (b(), commit(1, 7)),
        ("audit".to_string(), epoch(1)),
        ("audit".to_string(), commit(0, 3)),
        (b(), commit(0, 9)),
    ];
    let before = replay(&log);
    log.extend(
        before["billing"]
            .deletion_records()
            .into_iter()
            .map(|r| (b(), r)),
    );
    assert!(!replay(&log).contains_key("billing"), "deleted");
    log.extend([(b(), epoch(1)), (b(), commit(0, 2))]);
    let full = replay(&log);
    // Compaction keeps each key's last record; later it drops tombstones too.
    let key = |(id, record): &(String, GroupRecord)| match record {
        GroupRecord::Offset { partition, .. } | GroupRecord::OffsetDeleted { partition } => {
            (id.clone(), Some(partition.clone()))
        }
        _ => (id.clone(), None),
    };
    let compacted: Vec<(String, GroupRecord)> = log
        .iter()
        .enumerate()
        .filter(|(i, r)| log.iter().rposition(|o| key(o) == key(r)) == Some(*i))
        .map(|(_, r)| r.clone())
        .collect();
    assert!(compacted.len() < log.len());
    let tombstone =
        |r: &GroupRecord| matches!(r, GroupRecord::Deleted | GroupRecord::OffsetDeleted { .. });
    let without_tombstones: Vec<(String, GroupRecord)> = compacted
        .iter()
        .filter(|(_, r)| !tombstone(r))
        .cloned()
        .collect();
    assert_eq!(replay(&compacted), full);
    assert_eq!(replay(&without_tombstones), full);
    let billing = &full["billing"];
    assert_eq!(billing.epoch(), 1);
    assert_eq!(
        billing.offsets().keys().cloned().collect::<Vec<_>>(),
        vec![tp("orders", 0)],
        "the deleted group's partition 1 commit does not come back"
    );
    // A tombstone alone does not make a group.
    let stray = replay(&[(
        b(),
        GroupRecord::OffsetDeleted {
            partition: tp("orders", 1),
        },
    )]);
    assert!(stray.is_empty());
}
