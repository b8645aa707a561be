//! `ControllerMachine`: commands as bytes, snapshots.

use crate::support::*;
use raftline_controller::*;
use raftline_raft_store::StateMachine;

#[test]
fn commands_round_trip_through_bytes() {
    let mut m = ControllerMachine::new();
    let register = Command::RegisterBroker {
        id: b(1),
        incarnation: 5,
        endpoints: endpoints(1),
        rack: None,
        damaged: vec![],
    };
    let answer = m.apply(3, &encode_command(&register).unwrap());
    let applied = decode_response(&answer).unwrap().unwrap();
    assert_eq!(applied.version, MetadataVersion(1));
    assert_eq!(m.state().broker(b(1)).unwrap().epoch, BrokerEpoch(3));

    let unknown = Command::DeleteTopic { name: t("nope") };
    let answer = m.apply(4, &encode_command(&unknown).unwrap());
    assert_eq!(
        decode_response(&answer).unwrap(),
        Err(MetadataError::UnknownTopic { name: t("nope") })
    );
    assert_eq!(m.state().version(), MetadataVersion(1));
}

#[test]
fn undecodable_commands_are_answered_and_change_nothing() {
    let mut m = ControllerMachine::new();
    m.apply(
        1,
        &encode_command(&Command::RegisterBroker {
            id: b(1),
            incarnation: 1,
            endpoints: endpoints(1),
            rack: None,
            damaged: vec![],
        })
        .unwrap(),
    );
    let before = m.state().clone();
    let bad_name = br#"{"DeleteTopic":{"name":"a/b"}}"#;
    for garbage in [&b""[..], b"\xff\x00", b"{}", b"{\"Nope\":{}}", bad_name] {
        let answer = m.apply(2, garbage);
        let response = decode_response(&answer).unwrap();
        assert!(
            matches!(response, Err(MetadataError::MalformedCommand { .. })),
            "{garbage:?}: {response:?}"
        );
        assert_eq!(m.state(), &before);
    }
}

#[test]
fn snapshot_restores_an_equal_state() {
    let mut source = ControllerMachine::new();
    let mut commands = Vec::new();
    for id in 1..=4 {
        commands.push(Command::RegisterBroker {
            id: b(id),
            incarnation: 1,
            endpoints: endpoints(id),
            rack: Some(format!("r{id}")),
            damaged: vec![],
        });
    }
    for id in 1..=3 {
        // Registration i was applied at index i.
        commands.push(Command::UnfenceBroker {
            id: b(id),
            epoch: BrokerEpoch(u64::from(id)),
        });
    }
    commands.push(Command::CreateTopic {
        name: t("a"),
        configs: [("retention.ms".to_string(), "10".to_string())].into(),
        assignments: vec![ids(&[1, 2, 3]), ids(&[2, 3, 1])],
    });
    commands.push(Command::CreateTopic {
        name: t("b.c_d-e"),
        configs: Default::default(),
        assignments: vec![ids(&[3, 4])],
    });
    commands.push(Command::FenceBroker {
        id: b(2),
        epoch: None,
    });
    for (i, command) in commands.iter().enumerate() {
        let answer = source.apply(i as u64 + 1, &encode_command(command).unwrap());
        decode_response(&answer).unwrap().unwrap();
    }
    source.state().check_invariants().unwrap();
    let snapshot = source.snapshot();

    let mut restored = ControllerMachine::new();
    restored.apply(1, b"junk");
    restored.restore(&snapshot).unwrap();
    assert_eq!(restored.state(), source.state());
    assert_eq!(restored.snapshot(), snapshot);

    let before = restored.state().clone();
    assert!(restored.restore(b"not a snapshot").is_err());
    assert_eq!(restored.state(), &before);
}
