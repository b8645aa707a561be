use super::*;
use proptest::prelude::*;

fn tp(topic: &str, partition: u32) -> TopicPartition {
    TopicPartition {
        topic: topic.into(),
        partition,
    }
}

fn member(topics: &[&str]) -> MemberSpec {
    MemberSpec {
        topics: topics.iter().map(|t| t.to_string()).collect(),
        owned: BTreeSet::new(),
    }
}

fn members(specs: &[(&str, &[&str])]) -> BTreeMap<String, MemberSpec> {
    specs
        .iter()
        .map(|(id, topics)| (id.to_string(), member(topics)))
        .collect()
}

fn own(members: &mut BTreeMap<String, MemberSpec>, id: &str, owned: BTreeSet<TopicPartition>) {
    if let Some(m) = members.get_mut(id) {
        m.owned = owned;
    }
}

fn counts(topics: &[(&str, u32)]) -> BTreeMap<String, u32> {
    topics.iter().map(|(t, n)| (t.to_string(), *n)).collect()
}

/// `member -> "t0,t1,u0"`, for readable expectations.
fn show(assignment: &Assignment) -> Vec<(String, String)> {
    assignment
        .iter()
        .map(|(id, set)| {
            let list: Vec<String> = set
                .iter()
                .map(|tp| format!("{}{}", tp.topic, tp.partition))
                .collect();
            (id.clone(), list.join(","))
        })
        .collect()
}

fn want(rows: &[(&str, &str)]) -> Vec<(String, String)> {
    rows.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn names_round_trip() {
    for a in Assignor::ALL {
        assert_eq!(Assignor::from_name(a.name()), Some(a));
    }
    assert_eq!(Assignor::from_name("uniform"), Some(Assignor::Sticky));
    assert_eq!(Assignor::from_name("fair"), None);
}

#[test]
fn range_gives_contiguous_ranges_per_topic_extras_first() {
    let m = members(&[("a", &["t", "u"]), ("b", &["t", "u"]), ("c", &["u"])]);
    let got = Assignor::Range.assign(&m, &counts(&[("t", 5), ("u", 3), ("v", 4)]));
    assert_eq!(
        show(&got),
        want(&[("a", "t0,t1,t2,u0"), ("b", "t3,t4,u1"), ("c", "u2")])
    );
}

#[test]
fn round_robin_deals_in_turn_skipping_members_not_subscribed() {
    let m = members(&[("a", &["t", "u"]), ("b", &["t"]), ("c", &["t", "u"])]);
    let got = Assignor::RoundRobin.assign(&m, &counts(&[("t", 4), ("u", 3)]));
    // t0 a, t1 b, t2 c, t3 a, u0 c (b skipped), u1 a, u2 c.
    assert_eq!(
        show(&got),
        want(&[("a", "t0,t3,u1"), ("b", "t1"), ("c", "t2,u0,u2")])
    );
}

#[test]
fn sticky_keeps_ownership_and_moves_only_to_the_newcomer() {
    let mut m = members(&[("a", &["t"]), ("b", &["t"])]);
    let topics = counts(&[("t", 6)]);
    let first = Assignor::Sticky.assign(&m, &topics);
    assert_eq!(show(&first), want(&[("a", "t0,t2,t4"), ("b", "t1,t3,t5")]));
    for (id, owned) in &first {
        own(&mut m, id, owned.clone());
    }
    m.insert("c".into(), member(&["t"]));
    let second = Assignor::Sticky.assign(&m, &topics);
    assert_eq!(
        show(&second),
        want(&[("a", "t0,t2"), ("b", "t1,t3"), ("c", "t4,t5")])
    );
}

#[test]
fn sticky_drops_what_a_member_no_longer_may_own() {
    let mut m = members(&[("a", &["t"]), ("b", &["t", "u"])]);
    own(&mut m, "a", [tp("t", 0), tp("u", 0), tp("t", 9)].into());
    own(&mut m, "b", [tp("t", 0), tp("u", 0)].into());
    let got = Assignor::Sticky.assign(&m, &counts(&[("t", 2), ("u", 1)]));
    // a claimed t0 first and keeps it; u0 (a is not subscribed) and t9 (gone)
    // are dropped; b keeps u0; t1 goes to the first of the two holding one.
    assert_eq!(show(&got), want(&[("a", "t0,t1"), ("b", "u0")]));
}

#[test]
fn no_members_or_no_topics_assign_nothing() {
    for a in Assignor::ALL {
        assert!(a.assign(&BTreeMap::new(), &counts(&[("t", 3)])).is_empty());
        let got = a.assign(&members(&[("a", &["gone"])]), &counts(&[("t", 3)]));
        assert_eq!(show(&got), want(&[("a", "")]), "{a}");
    }
}

/// Random members (ids m0..), each subscribed to some of three topics and
/// owning some partitions (perhaps of topics it does not take any more).
fn arb_group() -> impl Strategy<Value = (BTreeMap<String, MemberSpec>, BTreeMap<String, u32>)> {
    let topics = ["t", "u", "v"];
    let spec = (
        proptest::sample::subsequence(topics.to_vec(), 0..=3),
        proptest::collection::btree_set((0..3usize, 0..10u32), 0..6),
    )
        .prop_map(move |(subs, owned)| MemberSpec {
            topics: subs.into_iter().map(String::from).collect(),
            owned: owned.into_iter().map(|(t, p)| tp(topics[t], p)).collect(),
        });
    (
        proptest::collection::vec(spec, 0..7),
        proptest::collection::vec(0..9u32, 3),
    )
        .prop_map(move |(specs, sizes)| {
            let members = specs
                .into_iter()
                .enumerate()
                .map(|(i, s)| (format!("m{i}"), s))
                .collect();
            let partitions = topics.iter().map(|t| t.to_string()).zip(sizes).collect();
            (members, partitions)
        })
}

fn check_valid(
    a: Assignor,
    members: &BTreeMap<String, MemberSpec>,
    partitions: &BTreeMap<String, u32>,
    got: &Assignment,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(
        got.keys().collect::<Vec<_>>(),
        members.keys().collect::<Vec<_>>()
    );
    let mut seen = BTreeSet::new();
    for (id, set) in got {
        for tp in set {
            prop_assert!(seen.insert(tp.clone()), "{a}: {tp} assigned twice");
            prop_assert!(
                members[id].topics.contains(&tp.topic),
                "{a}: {tp} to {id}, not subscribed"
            );
        }
    }
    let want = subscribed(members, partitions);
    prop_assert_eq!(
        seen,
        want.into_iter().collect::<BTreeSet<_>>(),
        "{}: not every subscribed partition",
        a
    );
    Ok(())
}

fn spread(got: &Assignment) -> usize {
    let sizes = got.values().map(BTreeSet::len);
    sizes.clone().max().unwrap_or(0) - sizes.min().unwrap_or(0)
}

proptest! {
    #[test]
    fn every_subscribed_partition_goes_to_exactly_one_subscriber((members, partitions) in arb_group()) {
        for a in Assignor::ALL {
            let got = a.assign(&members, &partitions);
            check_valid(a, &members, &partitions, &got)?;
            prop_assert_eq!(&a.assign(&members, &partitions), &got, "{} is deterministic", a);
        }
    }

    #[test]
    fn same_subscriptions_are_balanced_within_one(
        (mut members, partitions) in arb_group(),
    ) {
        for m in members.values_mut() {
            m.topics = ["t", "u"].iter().map(|t| t.to_string()).collect();
        }
        for a in [Assignor::RoundRobin, Assignor::Sticky] {
            let got = a.assign(&members, &partitions);
            prop_assert!(spread(&got) <= 1, "{a}: {:?}", show(&got));
        }
    }

    #[test]
    fn sticky_moves_only_what_a_membership_change_needs(
        (mut members, partitions) in arb_group(),
        leaver in any::<prop::sample::Index>(),
    ) {
        prop_assume!(!members.is_empty());
        for m in members.values_mut() {
            m.topics = ["t", "u", "v"].iter().map(|t| t.to_string()).collect();
        }
        // From a settled assignment.
        let settled = Assignor::Sticky.assign(&members, &partitions);
        for (id, set) in &settled {
            own(&mut members, id, set.clone());
        }
        let owner = |a: &Assignment, tp: &TopicPartition| {
            a.iter().find(|(_, s)| s.contains(tp)).map(|(id, _)| id.clone())
        };
        // A newcomer: every partition that moves, moves to it.
        let mut joined = members.clone();
        joined.insert("new".into(), MemberSpec { topics: members.values().next().map(|m| m.topics.clone()).unwrap_or_default(), owned: BTreeSet::new() });
        let after = Assignor::Sticky.assign(&joined, &partitions);
        for tp in subscribed(&joined, &partitions) {
            let (was, now) = (owner(&settled, &tp), owner(&after, &tp));
            prop_assert!(was == now || now.as_deref() == Some("new"), "{tp}: {was:?} -> {now:?}");
        }
        // A leaver: only its partitions move.
        let gone = leaver.get(&members.keys().cloned().collect::<Vec<_>>()).clone();
        let mut left = members.clone();
        left.remove(&gone);
        let after = Assignor::Sticky.assign(&left, &partitions);
        for tp in subscribed(&left, &partitions) {
            let (was, now) = (owner(&settled, &tp), owner(&after, &tp));
            prop_assert!(was == now || was.as_deref() == Some(gone.as_str()), "{tp}: {was:?} -> {now:?}");
        }
    }
}
