//! The machine a result was measured on: CPU model, the widest vector instructions in use,
//! threads and load average, recorded beside every timing so that figures are compared only
//! within one machine and one load.

use serde::Serialize;

/// Where and under what load a result was produced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Environment {
    /// The CPU model as the kernel names it (`/proc/cpuinfo`), or "unknown".
    pub cpu_model: String,
    /// The widest x86 vector instruction set detected at run time (AVX-512, AVX2, ...).
    pub isa: String,
    /// Threads of the computation (the global thread pool's size).
    pub threads: usize,
    /// One-minute load average when the record was taken (`/proc/loadavg`), when readable.
    pub load_average: Option<f64>,
}

/// The environment now.
pub fn record() -> Environment {
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, name)| name.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string());
    let load_average = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok());
    Environment {
        cpu_model,
        isa: isa().to_string(),
        threads: rayon::current_num_threads(),
        load_average,
    }
}

fn isa() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return "AVX-512";
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return "AVX2";
        }
        "SSE"
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        std::env::consts::ARCH
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_record_names_a_cpu_an_isa_and_the_threads() {
        let record = super::record();
        assert!(!record.cpu_model.is_empty());
        assert!(!record.isa.is_empty());
        assert!(record.threads >= 1);
    }
}
