//! The machine a timing was measured on: CPU model, vector instruction set, threads, load
//! average and time. Every JSON result that holds a timing records one, so that a figure can
//! be read with the conditions it was measured under (a shared 2-core machine under load 8
//! times differently from an idle one).

use serde::{Deserialize, Serialize};

/// Where and when a measurement ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// The CPU's model name (`/proc/cpuinfo`), or `unknown`.
    pub cpu: String,
    /// The widest x86 vector extension the CPU offers and the binary can use: `AVX-512`,
    /// `AVX2`, `SSE4.2`, or the architecture's name elsewhere.
    pub isa: String,
    /// Logical cores available to the process.
    pub cores: usize,
    /// Threads the measurement ran on (`--threads`, the pool's size).
    pub threads: usize,
    /// Load average over 1, 5 and 15 minutes when the record was made (`/proc/loadavg`;
    /// `None` where the system does not provide it).
    pub load_average: Option<[f64; 3]>,
    /// When the record was made, UTC (`YYYY-MM-DDTHH:MM:SSZ`).
    pub measured_at: String,
}

impl Machine {
    /// This machine now, for a measurement on `threads` threads.
    pub fn now(threads: usize) -> Machine {
        Machine {
            cpu: cpu_model(),
            isa: vector_extension().to_string(),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            threads,
            load_average: load_average(),
            measured_at: utc_now(),
        }
    }

    /// This machine now, for a measurement on the current thread pool.
    pub fn current() -> Machine {
        Machine::now(rayon::current_num_threads())
    }

    /// One line for reports: "Intel Xeon ... (AVX-512), 2 threads of 2 cores, load 1.30,
    /// 2026-12-02T10:00:00Z".
    pub fn describe(&self) -> String {
        format!(
            "{} ({}), {} thread(s) of {} core(s), load {}, {}",
            self.cpu,
            self.isa,
            self.threads,
            self.cores,
            self.load_average
                .map_or_else(|| "unknown".to_string(), |l| format!("{:.2}", l[0])),
            self.measured_at
        )
    }
}

/// The CPU's model name from `/proc/cpuinfo`.
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, name)| name.split_whitespace().collect::<Vec<_>>().join(" "))
        })
        .unwrap_or_else(|| "unknown".to_string())
}

/// The widest vector extension detected at run time.
fn vector_extension() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return "AVX-512";
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return "AVX2";
        }
        if std::arch::is_x86_feature_detected!("sse4.2") {
            return "SSE4.2";
        }
        "x86-64"
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        std::env::consts::ARCH
    }
}

/// The 1, 5 and 15 minute load averages.
fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut values = text.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some([values.next()??, values.next()??, values.next()??])
}

/// Now, UTC, as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc_now() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc_from_unix(seconds)
}

/// `seconds` since 1970-01-01 as `YYYY-MM-DDTHH:MM:SSZ` (the proleptic Gregorian calendar;
/// Howard Hinnant's `civil_from_days`).
pub fn utc_from_unix(seconds: u64) -> String {
    let days = (seconds / 86_400) as i64;
    let rest = seconds % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60
    )
}

/// CPU seconds this process has used so far, on every thread (user and system time from
/// `/proc/self/stat`, in clock ticks of 10 ms); `None` where the system does not provide it.
/// On a loaded machine the wall clock measures the neighbours too; the CPU time measures the
/// work (the removal benchmarks print both).
pub fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // After the command name (which may hold spaces, up to the last ')') come fields 3
    // onwards: utime and stime (fields 14 and 15) are the 12th and 13th.
    let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    let ticks = |index: usize| fields.get(index)?.parse::<f64>().ok();
    Some((ticks(11)? + ticks(12)?) / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_follow_the_calendar() {
        assert_eq!(utc_from_unix(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_from_unix(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc_from_unix(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(utc_from_unix(4_102_444_800), "2100-01-01T00:00:00Z");
    }

    #[test]
    fn the_machine_is_described() {
        let machine = Machine::now(2);
        assert_eq!(machine.threads, 2);
        assert!(machine.cores >= 1);
        assert!(!machine.cpu.is_empty() && !machine.isa.is_empty());
        assert_eq!(machine.measured_at.len(), 20);
        if cfg!(target_os = "linux") {
            let load = machine.load_average.expect("Linux has /proc/loadavg");
            assert!(load.iter().all(|l| *l >= 0.0));
        }
        assert!(machine.describe().contains("thread(s) of"));
    }

    #[test]
    fn process_cpu_time_grows_with_work() {
        let before = super::process_cpu_seconds().expect("/proc/self/stat on Linux");
        let start = std::time::Instant::now();
        let mut x = 1u64;
        while start.elapsed().as_secs_f64() < 0.3 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        let after = super::process_cpu_seconds().unwrap();
        assert!(after - before >= 0.1, "{before} -> {after}");
    }
}
