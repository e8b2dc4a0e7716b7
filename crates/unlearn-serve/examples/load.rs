//! Load generator for `unlearn serve` (BENCHMARKS.md "Deletion service"). Loopback only.
//!
//! Closed loop: C clients each send a single-id deletion request as soon as the last one was
//! acknowledged, for S seconds.
//!
//! Open loop (`--rate R`): request i is due at start + i/R, whatever the server does, and its
//! latency is measured from that scheduled time (a slow server cannot hide its delay by
//! slowing the sender down). After S seconds of arrivals the generator waits for the queue to
//! drain (at most `--drain` seconds) and reads every acknowledged request's status, so it
//! reports both the acknowledgement latency and the acknowledged → applied latency (the
//! server's commit and application times), the rate at which requests were applied, and how
//! far behind the arrivals the queue was when they stopped.
//!
//! `sustained` is true when every request settled (applied, or refused as a repeated id), at
//! the arrival rate within 5% (`settled_per_second`: those settled after the first
//! application, over the time from the first application to the last), with no failed
//! submission,
//! and the queue held at most two retrainings' worth of arrivals when they stopped (one
//! second's worth when nothing retrained); the retraining time is the service's own mean
//! (`unlearn_retrain_seconds` in `/metrics`, so TOKEN must be an admin token).
//!
//! Prints one JSON line.
//!
//! ```text
//! cargo run --release -p unlearn-serve --example load -- URL TOKEN IDS_FILE [CLIENTS] [SECONDS]
//! cargo run --release -p unlearn-serve --example load -- URL TOKEN IDS_FILE --rate R \
//!     [--seconds S] [--drain D] [--reader READ_TOKEN]
//! ```
//!
//! `--reader READ_TOKEN` also runs a client that downloads the whole ledger, page after page,
//! in a loop for the whole run (the interference a ledger export causes).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        f64::NAN
    } else {
        sorted[((sorted.len() - 1) as f64 * p).round() as usize]
    }
}

fn summary(mut values: Vec<f64>) -> serde_json::Value {
    values.sort_by(f64::total_cmp);
    serde_json::json!({
        "count": values.len(),
        "p50": percentile(&values, 0.5),
        "p99": percentile(&values, 0.99),
        "max": percentile(&values, 1.0),
    })
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(2);
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        fail(
            "usage: load URL TOKEN IDS_FILE [CLIENTS] [SECONDS] | load URL TOKEN IDS_FILE --rate R [--seconds S] [--drain D] [--reader TOKEN]",
        );
    }
    let url = args[1].trim_end_matches('/').to_string();
    if !(url.starts_with("http://127.") || url.starts_with("http://localhost")) {
        fail("the load generator only targets loopback addresses");
    }
    let token = args[2].clone();
    let ids: Vec<u32> = std::fs::read_to_string(&args[3])
        .unwrap_or_else(|e| fail(&format!("{}: {e}", args[3])))
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse()
                .unwrap_or_else(|_| fail("the ids file holds sample ids"))
        })
        .collect();
    if ids.is_empty() {
        fail("the ids file is empty");
    }
    let flag = |name: &str| {
        args.iter().position(|a| a == name).map(|i| {
            args.get(i + 1)
                .unwrap_or_else(|| fail(&format!("{name} needs a value")))
        })
    };
    let number = |name: &str, default: f64| {
        flag(name).map_or(default, |v| {
            v.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v > 0.0)
                .unwrap_or_else(|| fail(&format!("{name} must be a positive number")))
        })
    };
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    if flag("--rate").is_some() {
        let rate = number("--rate", 1.0);
        let seconds = number("--seconds", 60.0);
        let drain = number("--drain", 120.0);
        let reader = flag("--reader").cloned();
        open_loop(http, url, token, ids, rate, seconds, drain, reader).await;
    } else {
        let clients: usize = args
            .get(4)
            .map_or(16, |a| a.parse().unwrap_or_else(|_| fail("clients")));
        let seconds: f64 = args
            .get(5)
            .map_or(60.0, |a| a.parse().unwrap_or_else(|_| fail("seconds")));
        closed_loop(http, url, token, ids, clients, seconds).await;
    }
}

async fn closed_loop(
    http: reqwest::Client,
    url: String,
    token: String,
    ids: Vec<u32>,
    clients: usize,
    seconds: f64,
) {
    let ids = Arc::new(ids);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (http, url, token) = (http.clone(), url.clone(), token.clone());
            let (ids, next) = (ids.clone(), next.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut failures = 0usize;
                while Instant::now() < deadline {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let id = ids[index % ids.len()];
                    let sent = Instant::now();
                    let answer = http
                        .post(format!("{url}/v1/deletions"))
                        .bearer_auth(&token)
                        .json(&serde_json::json!({"ids": [id], "idempotency_key": format!("load-{index}")}))
                        .send()
                        .await;
                    match answer {
                        Ok(response) if response.status() == 202 => {
                            latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                        }
                        _ => failures += 1,
                    }
                }
                (latencies, failures)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut failures = 0;
    for task in tasks {
        let (mine, failed) = task.await.expect("client task");
        latencies.extend(mine);
        failures += failed;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let acknowledged = latencies.len();
    println!(
        "{}",
        serde_json::json!({
            "mode": "closed", "clients": clients, "seconds": elapsed,
            "acknowledged": acknowledged, "failed": failures,
            "acknowledged_per_second": acknowledged as f64 / elapsed,
            "ack_ms": summary(latencies),
        })
    );
}

/// What one scheduled request got: its acknowledgement latency from the scheduled time, or
/// the status it failed with (0: no answer).
enum Sent {
    Acknowledged { request_id: i64, ack_ms: f64 },
    Failed(u16),
}

#[allow(clippy::too_many_arguments)]
async fn open_loop(
    http: reqwest::Client,
    url: String,
    token: String,
    ids: Vec<u32>,
    rate: f64,
    seconds: f64,
    drain: f64,
    reader: Option<String>,
) {
    let total = (rate * seconds).round() as usize;
    let start = Instant::now();
    let stop_reader = Arc::new(AtomicBool::new(false));
    let reader_task = reader.map(|reader| {
        let (http, url, stop) = (http.clone(), url.clone(), stop_reader.clone());
        tokio::spawn(async move {
            let (mut downloads, mut entries) = (0usize, 0usize);
            while !stop.load(Ordering::SeqCst) {
                let mut after = -1i64;
                loop {
                    let Ok(response) = http
                        .get(format!("{url}/v1/ledger?after={after}&limit=10000"))
                        .bearer_auth(&reader)
                        .send()
                        .await
                    else {
                        break;
                    };
                    let next = response
                        .headers()
                        .get("x-next-after")
                        .and_then(|v| v.to_str().ok()?.parse::<i64>().ok());
                    entries += response.text().await.map_or(0, |t| t.lines().count());
                    match next {
                        Some(next) => after = next,
                        None => break,
                    }
                }
                downloads += 1;
            }
            (downloads, entries)
        })
    });
    let mut tasks = Vec::with_capacity(total);
    for index in 0..total {
        let due = start + Duration::from_secs_f64(index as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        let (http, url, token) = (http.clone(), url.clone(), token.clone());
        let id = ids[index % ids.len()];
        tasks.push(tokio::spawn(async move {
            let answer = http
                .post(format!("{url}/v1/deletions"))
                .bearer_auth(&token)
                .json(&serde_json::json!({"ids": [id], "idempotency_key": format!("open-{index}")}))
                .send()
                .await;
            match answer {
                Ok(response) if response.status() == 202 => {
                    let ack_ms = due.elapsed().as_secs_f64() * 1000.0;
                    match response.json::<serde_json::Value>().await {
                        Ok(value) => Sent::Acknowledged {
                            request_id: value["request_id"].as_i64().unwrap_or(-1),
                            ack_ms,
                        },
                        Err(_) => Sent::Failed(0),
                    }
                }
                Ok(response) => Sent::Failed(response.status().as_u16()),
                Err(_) => Sent::Failed(0),
            }
        }));
    }
    let sending_seconds = start.elapsed().as_secs_f64();
    let arrivals_end_ms = wall_ms();
    let mut acknowledged = Vec::new();
    let mut ack_ms = Vec::new();
    let mut failures: std::collections::BTreeMap<u16, usize> = Default::default();
    for task in tasks {
        match task.await.expect("request task") {
            Sent::Acknowledged {
                request_id,
                ack_ms: ms,
            } => {
                acknowledged.push(request_id);
                ack_ms.push(ms);
            }
            Sent::Failed(status) => *failures.entry(status).or_default() += 1,
        }
    }
    stop_reader.store(true, Ordering::SeqCst);
    let reader = match reader_task {
        Some(task) => {
            let (downloads, entries) = task.await.expect("reader task");
            serde_json::json!({"ledger_downloads": downloads, "entries_read": entries})
        }
        None => serde_json::Value::Null,
    };
    // The queue when the arrivals stopped, then until it drains.
    let status = |id: i64| {
        let (http, url, token) = (http.clone(), url.clone(), token.clone());
        async move {
            http.get(format!("{url}/v1/deletions/{id}"))
                .bearer_auth(&token)
                .send()
                .await
                .ok()?
                .json::<serde_json::Value>()
                .await
                .ok()
        }
    };
    let mut settled: Vec<serde_json::Value> = Vec::with_capacity(acknowledged.len());
    let drain_deadline = Instant::now() + Duration::from_secs_f64(drain);
    for &id in &acknowledged {
        loop {
            let answer = status(id).await.unwrap_or(serde_json::Value::Null);
            if answer["status"] == "pending" && Instant::now() < drain_deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            settled.push(answer);
            break;
        }
    }
    // Behind when the arrivals stopped: settled after that moment (server times), or never.
    let pending_at_end = settled
        .iter()
        .filter(|a| {
            a["status"] == "pending"
                || a["settled_at_ms"]
                    .as_i64()
                    .is_some_and(|t| t > arrivals_end_ms)
        })
        .count();
    let applied: Vec<&serde_json::Value> = settled
        .iter()
        .filter(|answer| answer["status"] == "applied")
        .collect();
    let refused = settled.iter().filter(|a| a["status"] == "refused").count();
    let still_pending = settled.iter().filter(|a| a["status"] == "pending").count();
    let applied_ms: Vec<f64> = applied
        .iter()
        .filter_map(|a| Some((a["settled_at_ms"].as_i64()? - a["received_at_ms"].as_i64()?) as f64))
        .collect();
    let first_received = applied
        .iter()
        .filter_map(|a| a["received_at_ms"].as_i64())
        .min();
    let applied_in_run = applied
        .iter()
        .filter(|a| {
            a["settled_at_ms"]
                .as_i64()
                .is_some_and(|t| t <= arrivals_end_ms)
        })
        .count();
    let last_applied = applied
        .iter()
        .filter_map(|a| a["settled_at_ms"].as_i64())
        .max();
    let applied_rate = match (first_received, last_applied) {
        (Some(first), Some(last)) if last > first => {
            applied.len() as f64 / ((last - first) as f64 / 1000.0)
        }
        _ => f64::NAN,
    };
    // The service's own retraining times (admin tokens only; absent otherwise).
    let metrics = http
        .get(format!("{url}/metrics"))
        .bearer_auth(&token)
        .send()
        .await
        .ok()
        .filter(|response| response.status() == 200);
    let metrics = match metrics {
        Some(response) => response.text().await.unwrap_or_default(),
        None => String::new(),
    };
    let metric = |name: &str| {
        metrics.lines().find_map(|line| {
            let (key, value) = line.split_once(' ')?;
            (key == name).then(|| value.trim().parse::<f64>().ok())?
        })
    };
    let retrains = metric("unlearn_retrain_seconds_count").unwrap_or(0.0);
    let retrain_seconds = (retrains > 0.0)
        .then(|| metric("unlearn_retrain_seconds_sum").map(|sum| sum / retrains))
        .flatten();
    // Settled = applied or refused (an id sent twice is refused the second time). The rate
    // at which requests settle: those settled after the first application, over the time
    // from the first application to the last (requests settle in lumps, one per
    // application: counting from the first arrival would charge the run with one request's
    // latency at each end).
    let mut settle_times: Vec<i64> = settled
        .iter()
        .filter_map(|answer| answer["settled_at_ms"].as_i64())
        .collect();
    settle_times.sort_unstable();
    let settled_rate = match (settle_times.first(), settle_times.last()) {
        (Some(&first), Some(&last)) if last > first => {
            let after_first = settle_times.iter().filter(|&&t| t > first).count();
            after_first as f64 / ((last - first) as f64 / 1000.0)
        }
        _ => f64::NAN,
    };
    let behind_seconds = pending_at_end as f64 / rate;
    let ack_to_applied = summary(applied_ms);
    let ack_to_applied_p99_ms = ack_to_applied["p99"].as_f64().unwrap_or(f64::NAN);
    // Sustained: everything settled, at the arrival rate within 5%, and the queue when the
    // arrivals stopped no more than two retrainings' worth of arrivals (one second's worth
    // when nothing retrained).
    let allowed_behind = retrain_seconds.map_or(1.0, |retrain| 2.0 * retrain);
    let sustained = still_pending == 0
        && failures.is_empty()
        && (settled_rate - rate).abs() <= 0.05 * rate
        && behind_seconds <= allowed_behind;
    println!(
        "{}",
        serde_json::json!({
            "mode": "open", "rate": rate, "seconds": seconds, "scheduled": total,
            "settled_per_second": settled_rate,
            "retrains": retrains, "mean_retrain_seconds": retrain_seconds,
            "sustained": sustained, "allowed_seconds_behind": allowed_behind,
            "ack_to_applied_p99_within_two_retrains": retrain_seconds.map(|r| ack_to_applied_p99_ms <= 2000.0 * r),
            "sending_seconds": sending_seconds,
            "acknowledged": acknowledged.len(),
            "failed": failures.iter().map(|(status, count)| (status.to_string(), count)).collect::<std::collections::BTreeMap<_, _>>(),
            "ack_ms": summary(ack_ms),
            "applied": applied.len(), "refused": refused, "still_pending_after_drain": still_pending,
            "applied_by_end_of_arrivals": applied_in_run,
            "pending_when_arrivals_stopped": pending_at_end,
            "seconds_of_arrivals_behind": behind_seconds,
            "applied_per_second_from_first_arrival": applied_rate,
            "ack_to_applied_ms": ack_to_applied,
            "reader": reader,
        })
    );
}

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
