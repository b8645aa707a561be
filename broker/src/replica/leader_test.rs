use super::*;

fn b(id: u32) -> BrokerId {
    BrokerId(id)
}

const EPOCH: LeaderEpoch = LeaderEpoch(3);

/// Broker 1 leads replicas 1,2,3 at epoch 3 from log end 10 (ISR as given).
fn leader(isr: &[u32], min_isr: usize) -> LeaderState {
    let isr: Vec<BrokerId> = isr.iter().map(|&i| b(i)).collect();
    LeaderState::new(
        b(1),
        EPOCH,
        &[b(1), b(2), b(3)],
        &isr,
        Offset(10),
        Offset(0),
        min_isr,
        1_000,
        0,
    )
}

fn fetch(follower: u32, offset: u64) -> FollowerFetch {
    FollowerFetch {
        follower: b(follower),
        broker_epoch: 100 + u64::from(follower),
        current_leader_epoch: EPOCH,
        fetch_offset: Offset(offset),
        last_fetched_epoch: None,
    }
}

/// The leader's log: epoch 2 up to 15, epoch 3 (current) from 15 to the end.
fn epochs(requested: LeaderEpoch) -> Option<(LeaderEpoch, Offset)> {
    match requested.0 {
        0..=1 => Some((requested, Offset(0))),
        2 => Some((LeaderEpoch(2), Offset(15))),
        3 => Some((LeaderEpoch(3), Offset(30))),
        _ => None,
    }
}

/// A follower's fetch with the leader's log at `log_end`, all of it durable.
fn serve(state: &mut LeaderState, f: FollowerFetch, log_end: u64, now: i64) -> Option<IsrChange> {
    state.on_append(Offset(log_end));
    match state.on_fetch(f, Offset(log_end), now, epochs) {
        Ok(FetchOutcome::Serve { expand }) => expand,
        other => panic!("{f:?}: {other:?}"),
    }
}

#[test]
fn high_watermark_is_the_smallest_log_end_in_the_isr_and_never_goes_back() {
    let mut s = leader(&[1, 2, 3], 2);
    let steps = [
        // (follower, its log end, leader log end, expected high watermark)
        (2, 7, 10, 0), // follower 3 has not fetched yet: nothing is known safe
        (3, 5, 10, 5),
        (2, 10, 12, 5),  // 3 still at 5
        (3, 12, 12, 10), // 2 reported 10
        (2, 12, 12, 12),
        (2, 8, 12, 12), // a lower report (after a truncation) never lowers it
    ];
    for (follower, end, log_end, hw) in steps {
        serve(&mut s, fetch(follower, end), log_end, 0);
        assert_eq!(s.high_watermark(), Offset(hw), "after {follower} at {end}");
    }
}

#[test]
fn below_min_insync_replicas_nothing_is_acknowledged() {
    let mut s = leader(&[1, 2], 3);
    assert_eq!(
        s.check_acks_all(),
        Err(NotEnoughReplicas { isr: 2, min: 3 })
    );
    serve(&mut s, fetch(2, 10), 10, 0);
    s.on_append(Offset(12));
    assert_eq!(
        s.high_watermark(),
        Offset(0),
        "strict min-ISR: the watermark stays"
    );
    assert!(leader(&[1, 2], 2).check_acks_all().is_ok());
}

#[test]
fn a_follower_joins_the_isr_only_at_the_watermark_and_the_epoch_start() {
    let mut s = leader(&[1, 2], 1);
    serve(&mut s, fetch(2, 10), 10, 0);
    assert_eq!(s.high_watermark(), Offset(10));
    // 3 is behind the watermark and the epoch start (10): not yet.
    assert_eq!(serve(&mut s, fetch(3, 6), 10, 0), None);
    let change = serve(&mut s, fetch(3, 10), 10, 0).expect("eligible at the watermark");
    assert_eq!(change.new_isr, BTreeSet::from([b(1), b(2), b(3)]));
    assert_eq!(
        change.broker_epochs.get(&b(3)),
        Some(&103),
        "KIP-903: with its broker epoch"
    );
    assert_eq!(
        serve(&mut s, fetch(3, 10), 10, 0),
        None,
        "one change in flight at a time"
    );
    // While the expansion is pending, 3 already counts (maximal ISR)...
    s.on_append(Offset(14));
    serve(&mut s, fetch(2, 14), 14, 0);
    assert_eq!(
        s.high_watermark(),
        Offset(10),
        "3 at 10 holds the watermark"
    );
    // ...and once refused, it no longer does.
    s.on_isr_answer(None);
    assert_eq!(s.high_watermark(), Offset(14));
}

#[test]
fn a_lagging_follower_is_proposed_out_and_counts_until_the_controller_agrees() {
    let mut s = leader(&[1, 2, 3], 2);
    serve(&mut s, fetch(2, 10), 10, 500);
    serve(&mut s, fetch(3, 10), 10, 500);
    s.on_append(Offset(20));
    serve(&mut s, fetch(2, 20), 20, 900);
    assert_eq!(
        s.check_lagging(1_400),
        None,
        "within replica.lag.time.max.ms"
    );
    let shrink = s.check_lagging(1_600).expect("3 last caught up at 500");
    assert_eq!(shrink.new_isr, BTreeSet::from([b(1), b(2)]));
    assert_eq!(
        s.high_watermark(),
        Offset(10),
        "3 still counts while the shrink is pending"
    );
    s.on_isr_answer(Some(&[b(1), b(2)]));
    assert_eq!(s.high_watermark(), Offset(20));
    assert_eq!(s.isr(), &BTreeSet::from([b(1), b(2)]));
}

#[test]
fn stale_and_future_epochs_and_strangers_are_refused() {
    let mut s = leader(&[1, 2, 3], 2);
    let cases = [
        (
            FollowerFetch {
                current_leader_epoch: LeaderEpoch(2),
                ..fetch(2, 5)
            },
            FetchError::FencedLeaderEpoch {
                given: LeaderEpoch(2),
                current: EPOCH,
            },
        ),
        (
            FollowerFetch {
                current_leader_epoch: LeaderEpoch(4),
                ..fetch(2, 5)
            },
            FetchError::UnknownLeaderEpoch {
                given: LeaderEpoch(4),
                current: EPOCH,
            },
        ),
        (fetch(9, 5), FetchError::NotAReplica(b(9))),
    ];
    for (f, want) in cases {
        assert_eq!(s.on_fetch(f, Offset(10), 0, epochs), Err(want));
    }
}

#[test]
fn a_diverging_follower_is_told_where_its_last_epoch_ends() {
    let mut s = leader(&[1, 2, 3], 2);
    let with = |offset: u64, epoch: u32| FollowerFetch {
        last_fetched_epoch: Some(LeaderEpoch(epoch)),
        ..fetch(2, offset)
    };
    let cases = [
        // Follower wrote epoch 2 up to 20; here epoch 2 ends at 15: truncate to 15.
        (
            with(20, 2),
            Some(Diverging {
                epoch: LeaderEpoch(2),
                end_offset: Offset(15),
            }),
        ),
        // Consistent: epoch 2 up to 15, then fetching on.
        (with(15, 2), None),
        // Follower has epoch-1 records up to 12 that this leader never had (epoch
        // 1 is empty here): truncate back to 0 (restart-then-elect, KIP-101).
        (
            with(12, 1),
            Some(Diverging {
                epoch: LeaderEpoch(1),
                end_offset: Offset(0),
            }),
        ),
    ];
    for (f, want) in cases {
        let got = s.on_fetch(f, Offset(30), 0, epochs).unwrap();
        match want {
            Some(d) => assert_eq!(got, FetchOutcome::Diverging(d), "{f:?}"),
            None => assert!(matches!(got, FetchOutcome::Serve { .. }), "{f:?}: {got:?}"),
        }
    }
}

#[test]
fn a_changed_min_insync_stops_or_frees_the_high_watermark() {
    let mut s = leader(&[1, 2], 2);
    serve(&mut s, fetch(2, 8), 10, 0);
    assert_eq!(s.high_watermark(), Offset(8));
    assert_eq!(s.check_acks_all(), Ok(()));
    info_min(&mut s, 3);
    serve(&mut s, fetch(2, 10), 10, 1);
    assert_eq!(
        s.high_watermark(),
        Offset(8),
        "ISR of 2 below min.insync 3: held"
    );
    assert!(
        s.check_acks_all().is_err(),
        "acks=all refused below the new minimum"
    );
    info_min(&mut s, 2);
    assert_eq!(s.high_watermark(), Offset(10), "back at 2: moves at once");
    assert_eq!(s.check_acks_all(), Ok(()));
}

fn info_min(s: &mut LeaderState, min: usize) {
    s.set_min_isr(min);
}

#[test]
fn the_leader_counts_only_what_its_own_fsync_made_durable() {
    let mut s = leader(&[1, 2, 3], 2);
    // Followers were served up to 14 while the leader's fsync of 10..14 ran.
    s.on_fetch(fetch(2, 14), Offset(14), 0, epochs).unwrap();
    s.on_fetch(fetch(3, 14), Offset(14), 0, epochs).unwrap();
    assert_eq!(
        s.high_watermark(),
        Offset(10),
        "both followers hold 14, the leader durably only 10"
    );
    s.on_append(Offset(12));
    assert_eq!(s.high_watermark(), Offset(12));
    s.on_append(Offset(14));
    assert_eq!(s.high_watermark(), Offset(14));
    // A late report of an older fsync never moves it back.
    s.on_append(Offset(11));
    assert_eq!(s.high_watermark(), Offset(14));
}
