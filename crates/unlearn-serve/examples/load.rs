//! Load generator for `unlearn serve` (BENCHMARKS.md "Deletion service"): C concurrent
//! clients submit single-id deletion requests for S seconds, cycling through the ids in a
//! file, and the tool prints the acknowledged requests per second and the acknowledgement
//! latency percentiles as one JSON line. Loopback only.
//!
//! cargo run --release -p unlearn-serve --example load -- URL TOKEN IDS_FILE [CLIENTS] [SECONDS]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: load URL TOKEN IDS_FILE [CLIENTS] [SECONDS]");
        std::process::exit(2);
    }
    let url = args[1].trim_end_matches('/').to_string();
    if !(url.starts_with("http://127.") || url.starts_with("http://localhost")) {
        eprintln!("error: the load generator only targets loopback addresses");
        std::process::exit(2);
    }
    let token = args[2].clone();
    let ids: Vec<u32> = std::fs::read_to_string(&args[3])
        .expect("readable ids file")
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|t| !t.is_empty())
        .map(|t| t.parse().expect("sample ids"))
        .collect();
    let clients: usize = args.get(4).map_or(16, |a| a.parse().expect("clients"));
    let seconds: f64 = args.get(5).map_or(60.0, |a| a.parse().expect("seconds"));
    let ids = Arc::new(ids);
    let next = Arc::new(AtomicUsize::new(0));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .expect("client");
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
                            latencies.push(sent.elapsed().as_secs_f64());
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
    latencies.sort_by(f64::total_cmp);
    let percentile = |p: f64| {
        if latencies.is_empty() {
            f64::NAN
        } else {
            latencies[((latencies.len() - 1) as f64 * p).round() as usize] * 1000.0
        }
    };
    println!(
        "{}",
        serde_json::json!({
            "clients": clients, "seconds": elapsed, "acknowledged": latencies.len(),
            "failed": failures, "acknowledged_per_second": latencies.len() as f64 / elapsed,
            "ack_ms_p50": percentile(0.5), "ack_ms_p99": percentile(0.99),
            "ack_ms_max": percentile(1.0),
        })
    );
}
