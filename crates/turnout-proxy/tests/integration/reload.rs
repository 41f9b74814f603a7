//! Item 1: atomic reloads under load lose no request.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::Notify;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_failed_request_across_200_reloads_under_load() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let c2 = Backend::start("c").await;
    let files = [
        split_file(&[("a", 90, &a), ("b", 10, &b)], ""),
        split_file(&[("a", 10, &b), ("b", 90, &c2)], "    sticky: instance\n"),
        split_file(&[("b", 50, &c2), ("c", 50, &a)], "    sticky: off\n"),
        format!(
            "routes:\n  - host: app.localhost\n    services:\n      - {{ name: a, endpoints: [\"{}\", \"{}\", \"{}\"] }}\n",
            a.addr, b.addr, c2.addr
        ),
    ];
    let proxy = proxy(&files[0]).await;
    let addr = proxy.addrs().public;
    let done = Arc::new(AtomicBool::new(false));
    let completed = Arc::new(AtomicUsize::new(0));
    let progress = Arc::new(Notify::new());
    let mut load = Vec::new();
    for _ in 0..8 {
        let (done, completed, progress) = (done.clone(), completed.clone(), progress.clone());
        load.push(tokio::spawn(async move {
            let client = client();
            let mut failures = Vec::new();
            // Bounded: the loop ends when reloading is done, or after
            // 100,000 requests whatever happens.
            for i in 0..100_000 {
                if done.load(Ordering::Relaxed) {
                    break;
                }
                let cookie = format!("turnout_pos={}", (i * 7_919) % 1_000_000);
                let answer = get(&client, addr, "app.localhost", "/", &[("cookie", &cookie)]).await;
                if answer.status != 200 {
                    failures.push(format!("{} {}", answer.status, answer.body));
                }
                completed.fetch_add(1, Ordering::Relaxed);
                progress.notify_waiters();
            }
            failures
        }));
    }
    for reload in 0..200 {
        // Let some requests through between reloads.
        let target = completed.load(Ordering::Relaxed) + 8;
        while completed.load(Ordering::Relaxed) < target {
            let notified = progress.notified();
            if completed.load(Ordering::Relaxed) >= target {
                break;
            }
            notified.await;
        }
        proxy.publish(table(&files[(reload + 1) % files.len()]));
    }
    done.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for task in load {
        failures.extend(task.await.unwrap());
    }
    let total = completed.load(Ordering::Relaxed);
    assert!(total >= 1_600, "only {total} requests");
    assert!(
        failures.is_empty(),
        "{} of {total} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    proxy.shutdown().await;
    for backend in [a, b, c2] {
        backend.kill().await;
    }
}
