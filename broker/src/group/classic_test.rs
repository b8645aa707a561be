use super::*;

const G: &str = "g";

fn join(member_id: &str, protocols: &[&str]) -> Join {
    Join {
        member_id: member_id.to_string(),
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        protocol_type: "consumer".into(),
        protocols: protocols
            .iter()
            .map(|p| (p.to_string(), Bytes::from(format!("meta-{member_id}-{p}"))))
            .collect(),
        session_ms: 10_000,
        rebalance_ms: 5_000,
        require_known_member_id: true,
    }
}

/// Joins `id` (already known) at `now`.
fn rejoin(g: &mut ClassicGroup, id: &str, now: i64) -> String {
    g.join(G, &join(id, &["range", "roundrobin"]), now, 3_000, || {
        unreachable!("known member")
    })
    .unwrap()
}

/// A new member: MEMBER_ID_REQUIRED first, then the join with that id.
fn new_member(g: &mut ClassicGroup, id: &str, now: i64) -> String {
    let err = g
        .join(G, &join("", &["range", "roundrobin"]), now, 3_000, || {
            id.to_string()
        })
        .unwrap_err();
    assert_eq!(
        err,
        GroupError::MemberIdRequired {
            group: G.into(),
            member: id.into()
        }
    );
    rejoin(g, id, now)
}

#[test]
fn members_join_after_the_initial_delay_and_the_leader_assigns() {
    let mut g = ClassicGroup::default();
    assert_eq!(g.state(), ClassicState::Empty);
    new_member(&mut g, "a", 0);
    new_member(&mut g, "b", 100);
    assert!(matches!(g.state(), ClassicState::PreparingRebalance { .. }));
    assert_eq!(g.joined(G, "a", 0), Ok(None), "waits for the initial delay");
    assert!(!g.tick(2_999, 3_000) || matches!(g.state(), ClassicState::PreparingRebalance { .. }));
    assert!(g.tick(3_000, 3_000));
    let a = g.joined(G, "a", 0).unwrap().unwrap();
    let b = g.joined(G, "b", 0).unwrap().unwrap();
    assert_eq!((a.generation, b.generation), (1, 1));
    assert_eq!(a.protocol, "range", "the leader's first choice all support");
    assert_eq!(a.leader, "a");
    assert_eq!(
        a.members.len(),
        2,
        "the leader sees every member's metadata"
    );
    assert_eq!(a.members[1], ("b".to_string(), Bytes::from("meta-b-range")));
    assert!(b.members.is_empty());

    assert_eq!(g.sync(G, "b", 1, &[], 3_100), Ok(None), "before the leader");
    let assignments = vec![
        ("a".to_string(), Bytes::from("A")),
        ("b".to_string(), Bytes::from("B")),
    ];
    assert_eq!(
        g.sync(G, "a", 1, &assignments, 3_200),
        Ok(Some(Bytes::from("A")))
    );
    assert_eq!(g.state(), ClassicState::Stable);
    assert_eq!(g.sync(G, "b", 1, &[], 3_300), Ok(Some(Bytes::from("B"))));
    assert_eq!(g.heartbeat(G, "b", 1, 3_400), Ok(()));
    assert_eq!(g.check_commit(G, "a", 1, 3_500), Ok(()));
}

#[test]
fn a_join_or_leave_makes_everyone_rejoin_and_wrong_generations_are_refused() {
    let mut g = ClassicGroup::default();
    new_member(&mut g, "a", 0);
    g.tick(3_000, 3_000);
    g.sync(G, "a", 1, &[("a".into(), Bytes::from("all"))], 3_000)
        .unwrap();
    new_member(&mut g, "b", 4_000);
    assert_eq!(
        g.heartbeat(G, "a", 1, 4_100),
        Err(GroupError::RebalanceInProgress { group: G.into() })
    );
    assert_eq!(
        g.check_commit(G, "a", 1, 4_100),
        Err(GroupError::RebalanceInProgress { group: G.into() }),
        "no commits while the partitions move"
    );
    rejoin(&mut g, "a", 4_200);
    assert_eq!(g.generation(), 2, "every member rejoined: no waiting");
    assert_eq!(
        g.heartbeat(G, "a", 1, 4_300),
        Err(GroupError::IllegalGeneration {
            group: G.into(),
            member: "a".into(),
            current: 2,
            given: 1
        })
    );
    assert_eq!(
        g.heartbeat(G, "zombie", 2, 4_300),
        Err(GroupError::UnknownMemberId {
            group: G.into(),
            member: "zombie".into()
        })
    );
    assert_eq!(g.leave(G, &["b".to_string()], 4_400, 3_000), vec![Ok(())]);
    rejoin(&mut g, "a", 4_500);
    assert_eq!(g.generation(), 3);
    assert_eq!(g.members().len(), 1);
    assert_eq!(g.leave(G, &["a".to_string()], 4_600, 3_000), vec![Ok(())]);
    assert_eq!(g.state(), ClassicState::Empty);
    assert_eq!(g.check_commit(G, "", -1, 4_700), Ok(()), "a simple commit");
}

#[test]
fn silent_members_expire_and_a_leader_that_never_syncs_restarts_the_rebalance() {
    let mut g = ClassicGroup::default();
    new_member(&mut g, "a", 0);
    new_member(&mut g, "b", 0);
    g.tick(3_000, 3_000);
    assert!(matches!(
        g.state(),
        ClassicState::CompletingRebalance { .. }
    ));
    // Nobody syncs within the rebalance timeout (5 s).
    g.heartbeat(G, "a", 1, 7_000).unwrap();
    g.heartbeat(G, "b", 1, 7_000).unwrap();
    assert!(g.tick(8_001, 3_000));
    assert!(matches!(g.state(), ClassicState::PreparingRebalance { .. }));
    // Only a rejoins; b's session runs out (10 s after its last heartbeat).
    rejoin(&mut g, "a", 9_000);
    g.tick(17_001, 3_000);
    assert_eq!(g.members().keys().collect::<Vec<_>>(), vec!["a"]);
    assert_eq!(g.generation(), 2);
    assert!(matches!(
        g.state(),
        ClassicState::CompletingRebalance { .. }
    ));
    // a goes silent too: the group is empty.
    g.tick(40_000, 3_000);
    assert_eq!(g.state(), ClassicState::Empty);
    assert!(g.members().is_empty());
}

#[test]
fn members_must_agree_on_protocols_and_timeouts_are_bounded() {
    let mut g = ClassicGroup::default();
    new_member(&mut g, "a", 0);
    let mut other = join("", &["sticky"]);
    let err = g.join(G, &other, 10, 0, || "b".into()).unwrap_err();
    assert!(
        matches!(err, GroupError::InconsistentGroupProtocol { .. }),
        "{err:?}"
    );
    other.protocols = vec![("range".into(), Bytes::new())];
    other.protocol_type = "connect".into();
    let err = g.join(G, &other, 10, 0, || "b".into()).unwrap_err();
    assert!(
        matches!(err, GroupError::InconsistentGroupProtocol { .. }),
        "{err:?}"
    );
    let mut quick = join("", &["range"]);
    quick.session_ms = 10;
    let err = g.join(G, &quick, 10, 0, || "c".into()).unwrap_err();
    assert!(
        matches!(err, GroupError::InvalidSessionTimeout { .. }),
        "{err:?}"
    );
    let unknown = g.join(G, &join("nobody", &["range"]), 10, 0, || "x".into());
    assert!(matches!(unknown, Err(GroupError::UnknownMemberId { .. })));
    assert_eq!(g.members().len(), 1, "nothing changed");
    assert_eq!(
        g.check_commit(G, "", -1, 20),
        Err(GroupError::UnknownMemberId {
            group: G.into(),
            member: String::new()
        }),
        "a group with members takes commits from its members only"
    );
}

#[test]
fn a_follower_rejoining_with_the_same_metadata_keeps_the_generation() {
    let mut g = ClassicGroup::default();
    new_member(&mut g, "a", 0);
    new_member(&mut g, "b", 0);
    g.tick(3_000, 3_000);
    g.sync(G, "a", 1, &[("b".into(), Bytes::from("B"))], 3_000)
        .unwrap();
    rejoin(&mut g, "b", 4_000);
    assert_eq!(g.state(), ClassicState::Stable);
    let again = g.joined(G, "b", 1).unwrap().unwrap();
    assert_eq!(again.generation, 1);
    assert_eq!(g.sync(G, "b", 1, &[], 4_100), Ok(Some(Bytes::from("B"))));
}

#[test]
fn a_member_waiting_in_join_outlives_its_session() {
    let mut g = ClassicGroup::default();
    let mut a = join("", &["range"]);
    a.session_ms = 1_000;
    a.rebalance_ms = 60_000;
    a.require_known_member_id = false;
    let id = g.join(G, &a, 0, 0, || "a".into()).unwrap();
    g.sync(G, &id, 1, &[], 0).unwrap();
    let mut b = a.clone();
    b.member_id = String::new();
    g.join(G, &b, 500, 0, || "b".into()).unwrap();
    // b waits in its join for a, well past b's own 1 s session; a is told
    // to rejoin by its heartbeats, which keep its session.
    for now in (1_300..=5_000).step_by(700) {
        assert_eq!(
            g.heartbeat(G, "a", 1, now),
            Err(GroupError::RebalanceInProgress { group: G.into() })
        );
        g.tick(now, 0);
    }
    assert!(g.members().contains_key("b"), "a joining member is kept");
    assert_eq!(g.generation(), 1, "still waiting for a");
    rejoin(&mut g, "a", 5_100);
    assert_eq!(g.generation(), 2);
    assert_eq!(g.members().len(), 2);
}
