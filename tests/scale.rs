//! Running out of stacks is an error, never a crash.
//!
//! One test per file on purpose: it maps every stack the process may have,
//! which would starve any test running beside it in the same process.

use std::io;

/// The limit this machine has; the test maps about half of it in stacks.
fn max_map_count() -> Option<usize> {
    std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[test]
fn past_the_map_budget_spawn_fails_cleanly_and_the_program_carries_on() {
    let Some(limit) = max_map_count() else {
        eprintln!("no /proc/sys/vm/max_map_count here: nothing to test");
        return;
    };
    if limit > 140_000 {
        // Raised limits would make this test map (and touch) far more
        // stacks than it needs to prove the point.
        eprintln!("vm.max_map_count = {limit} is raised; skipping the exhaustion test");
        return;
    }
    let (spawned, err, alloc_ok, panic_msg) = bucle::run(move || {
        let gate: bucle::Future<()> = bucle::Future::new();
        let mut tasks = Vec::new();
        let err = loop {
            let gate = gate.clone();
            match bucle::TaskBuilder::new()
                .stack_size(bucle::MIN_STACK_SIZE)
                .try_spawn(move || {
                    let _ = gate.wait();
                }) {
                Ok(t) => tasks.push(t),
                Err(e) => break e,
            }
            assert!(
                tasks.len() <= limit / 2,
                "mapped more stacks than vm.max_map_count allows"
            );
        };
        // The heap must still be able to grow: this aborted the process
        // before the budget existed.
        let boxes: Vec<Box<u64>> = (0..200_000).map(Box::new).collect();
        let alloc_ok = boxes.len() == 200_000;
        // `spawn` (which cannot return an error) panics with the same text.
        let panic_msg = std::panic::catch_unwind(|| bucle::spawn(|| ()))
            .err()
            .and_then(|p| p.downcast::<String>().ok())
            .map(|s| *s)
            .unwrap_or_default();
        gate.set_result(()).unwrap();
        let spawned = tasks.len();
        for t in tasks {
            t.join().unwrap();
        }
        (spawned, err, alloc_ok, panic_msg)
    });
    assert!(alloc_ok);
    assert_eq!(err.kind(), io::ErrorKind::OutOfMemory);
    let msg = err.to_string();
    assert!(msg.contains("vm.max_map_count"), "{msg}");
    assert!(msg.contains("smaller stacks do"), "{msg}");
    assert!(
        panic_msg.contains("vm.max_map_count"),
        "spawn should panic naming the limit, got: {panic_msg:?}"
    );
    // Most of the budget was usable: two mappings per stack, a reserve kept.
    let budget = (limit - bucle::MAP_RESERVE) / 2;
    assert!(
        spawned > budget * 9 / 10,
        "only {spawned} tasks fit, expected close to {budget}"
    );
    // Every stack came back.
    assert_eq!(bucle::stack_pool_stats().in_use, 0);
}
