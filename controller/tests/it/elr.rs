//! Eligible leader replicas (KIP-966) and damaged copies: who may lead once
//! the ISR has fallen below min.insync.replicas and its last member is gone.

use crate::support::*;
use raftline_controller::*;
use tracing::info;

/// `(leader, isr, elr)` of `t`-0.
fn roles(c: &Cluster) -> (Option<u32>, Vec<u32>, Vec<u32>) {
    let part = c.partition("t", 0);
    (
        part.leader.map(|l| l.0),
        part.isr.iter().map(|x| x.0).collect(),
        part.elr.iter().map(|x| x.0).collect(),
    )
}

/// Registers a new incarnation of `id`, reporting `t`-0 damaged or not.
fn restart(c: &mut Cluster, id: u32, incarnation: u64, damaged: bool) {
    c.apply(Command::RegisterBroker {
        id: b(id),
        incarnation,
        endpoints: endpoints(id),
        rack: None,
        damaged: if damaged {
            vec![(t("t"), p(0))]
        } else {
            vec![]
        },
    })
    .unwrap();
}

/// Three brokers, `t`-0 on [1, 2, 3] (min.insync 2); 3 then 2 fenced: the ISR
/// is {1}, and 2 left it below min.insync.
fn isr_down_to_one() -> Cluster {
    let mut c = Cluster::with_live(&[1, 2, 3]);
    c.create("t", &[&[1, 2, 3]]);
    c.fence(3);
    info!("ISR {{1, 2}} still meets min.insync: 3 is not eligible");
    assert_eq!(roles(&c), (Some(1), vec![1, 2], vec![]));
    c.fence(2);
    info!("ISR {{1}} is below min.insync: 2 holds every committed record");
    assert_eq!(roles(&c), (Some(1), vec![1], vec![2]));
    c
}

#[test]
fn an_eligible_replica_leads_when_the_last_isr_member_goes() {
    let mut c = isr_down_to_one();
    restart(&mut c, 2, 22, false);
    c.unfence(2);
    info!("1 leads; 2 stays eligible, not in the ISR");
    assert_eq!(roles(&c), (Some(1), vec![1], vec![2]));
    c.fence(1);
    info!("1 fenced: 2 leads from the ELR, 1 becomes eligible");
    assert_eq!(roles(&c), (Some(2), vec![2], vec![1]));
}

#[test]
fn an_offline_partition_elects_an_eligible_replica_when_it_returns() {
    let mut c = isr_down_to_one();
    c.fence(1);
    info!("nobody live: offline, 1 kept as the last ISR member");
    assert_eq!(roles(&c), (None, vec![1], vec![2]));
    restart(&mut c, 2, 22, false);
    c.unfence(2);
    assert_eq!(roles(&c), (Some(2), vec![2], vec![1]));
}

#[test]
fn a_damaged_last_member_leaves_the_isr_and_an_eligible_replica_leads() {
    let mut c = isr_down_to_one();
    c.fence(1);
    restart(&mut c, 1, 11, true);
    info!("1 lost records it held: out of the ISR and ELR; the ISR is empty");
    assert_eq!(roles(&c), (None, vec![], vec![2]));
    c.unfence(1);
    info!("1 back, yet not electable");
    assert_eq!(roles(&c), (None, vec![], vec![2]));
    restart(&mut c, 2, 22, false);
    c.unfence(2);
    assert_eq!(roles(&c), (Some(2), vec![2], vec![]));
    info!("1 catches up and joins: the ISR meets min.insync again");
    c.alter("t", 0, &[1, 2]);
    assert_eq!(roles(&c), (Some(2), vec![1, 2], vec![]));
}

#[test]
fn a_damaged_copy_with_nobody_eligible_waits_for_an_unclean_election() {
    let mut c = Cluster::with_live(&[1, 2, 3]);
    c.create("t", &[&[1, 2, 3]]);
    c.alter("t", 0, &[1]);
    info!("the leader shrank the ISR to itself: 2 and 3 are eligible");
    assert_eq!(roles(&c), (Some(1), vec![1], vec![2, 3]));
    c.alter("t", 0, &[1, 2]);
    info!("back at min.insync: nobody outside is eligible");
    assert_eq!(roles(&c), (Some(1), vec![1, 2], vec![]));
    restart(&mut c, 2, 22, true);
    info!("2 reports its copy damaged: out, and not eligible");
    assert_eq!(roles(&c), (Some(1), vec![1], vec![]));
    c.fence(1);
    restart(&mut c, 1, 11, true);
    c.unfence(1);
    info!("the last member damaged too: no replica is known to hold everything");
    assert_eq!(roles(&c), (None, vec![], vec![]));
    let elect = |c: &mut Cluster| {
        c.apply(Command::ElectLeader {
            topic: t("t"),
            partition: p(0),
            election: ElectionType::Unclean,
        })
    };
    elect(&mut c).unwrap();
    info!("the operator's unclean election takes the one live replica");
    assert_eq!(roles(&c), (Some(1), vec![1], vec![]));
}

#[test]
fn a_damaged_leader_restarting_within_its_session_loses_the_lead() {
    let mut c = Cluster::with_live(&[1, 2, 3]);
    c.create("t", &[&[1, 2, 3]]);
    restart(&mut c, 1, 11, true);
    assert_eq!(roles(&c), (Some(2), vec![2, 3], vec![]));
    info!("a damaged report for a partition it is not in changes nothing");
    let before = c.partition("t", 0);
    restart(&mut c, 1, 12, true);
    assert_eq!(c.partition("t", 0), before);
}

#[test]
fn changing_min_insync_clears_the_eligible_replicas() {
    let mut c = isr_down_to_one();
    let epoch = c.partition("t", 0).partition_epoch;
    info!("another config changes nothing of the partition");
    let applied = c
        .apply(Command::AlterTopicConfigs {
            topic: t("t"),
            set: [("retention.ms".to_string(), "1000".to_string())].into(),
            delete: Default::default(),
        })
        .unwrap();
    assert_eq!(applied.deltas.len(), 1, "the topic's record only");
    assert_eq!(roles(&c), (Some(1), vec![1], vec![2]));
    info!("min.insync 1: 2 was eligible under min.insync 2 only");
    let applied = c
        .apply(Command::AlterTopicConfigs {
            topic: t("t"),
            set: [("min.insync.replicas".to_string(), "1".to_string())].into(),
            delete: Default::default(),
        })
        .unwrap();
    assert_eq!(applied.deltas.len(), 2, "the topic, then the partition");
    assert_eq!(roles(&c), (Some(1), vec![1], vec![]));
    assert_eq!(c.partition("t", 0).partition_epoch, epoch.next());
    let topic = c.state.topic(&t("t")).unwrap();
    assert_eq!(
        topic.configs.get("retention.ms").map(String::as_str),
        Some("1000")
    );
    assert_eq!(topic.min_insync(), 1);
}

#[test]
fn config_changes_are_validated_and_deletes_restore_defaults() {
    let mut c = Cluster::with_live(&[1, 2, 3]);
    c.create("t", &[&[1, 2, 3]]);
    let alter = |set: &[(&str, &str)], delete: &[&str]| Command::AlterTopicConfigs {
        topic: t("t"),
        set: set
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        delete: delete.iter().map(|k| k.to_string()).collect(),
    };
    c.apply(alter(
        &[("cleanup.policy", "compact"), ("segment.bytes", "4096")],
        &[],
    ))
    .unwrap();
    c.apply(alter(&[], &["segment.bytes"])).unwrap();
    let configs = c.state.topic(&t("t")).unwrap().configs.clone();
    assert_eq!(
        configs,
        [("cleanup.policy".to_string(), "compact".to_string())].into()
    );
    for bad in [
        alter(&[("retention.mss", "1")], &[]),
        alter(&[("min.insync.replicas", "4")], &[]),
        alter(&[("segment.bytes", "12")], &[]),
        alter(&[], &["no.such.config"]),
    ] {
        let error = c.reject(bad);
        assert!(
            matches!(error, MetadataError::InvalidConfig { .. }),
            "{error:?}"
        );
    }
    let missing = c.reject(Command::AlterTopicConfigs {
        topic: t("missing"),
        set: Default::default(),
        delete: Default::default(),
    });
    assert!(matches!(missing, MetadataError::UnknownTopic { .. }));
    assert_eq!(
        c.state.topic(&t("t")).unwrap().configs,
        configs,
        "refusals change nothing"
    );
}
