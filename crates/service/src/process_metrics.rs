//! The standard Prometheus process metrics (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, `process_virtual_memory_bytes`,
//! `process_open_fds`, `process_max_fds`, `process_start_time_seconds`),
//! read from `/proc/self` at each scrape. They keep the names every
//! Prometheus client library uses, so existing dashboards work; everything
//! paxid's own is under `paxid_`. Elsewhere than Linux nothing is added.

use std::fmt::Write as _;

/// Clock ticks per second in `/proc/*/stat` (`USER_HZ`, fixed at 100 in
/// the Linux ABI whatever the kernel's own tick).
const TICKS_PER_SECOND: f64 = 100.0;

/// Appends the metrics it can read to a Prometheus text body.
pub fn render(body: &mut String) {
    let mut add = |name: &str, kind: &str, help: &str, value: Option<f64>| {
        if let Some(value) = value {
            let _ = write!(
                body,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            );
        }
    };
    let stat = std::fs::read_to_string("/proc/self/stat").ok();
    let fields = stat.as_deref().map(stat_fields).unwrap_or_default();
    let field = |n: usize| fields.get(n).and_then(|f| f.parse::<f64>().ok());
    let cpu = field(11)
        .zip(field(12))
        .map(|(user, system)| (user + system) / TICKS_PER_SECOND);
    add(
        "process_cpu_seconds_total",
        "counter",
        "User and system CPU time spent in seconds.",
        cpu,
    );
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    add(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        status_kib(&status, "VmRSS:").map(|kib| kib * 1024.0),
    );
    add(
        "process_virtual_memory_bytes",
        "gauge",
        "Virtual memory size in bytes.",
        status_kib(&status, "VmSize:").map(|kib| kib * 1024.0),
    );
    let open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|dir| dir.count() as f64);
    add(
        "process_open_fds",
        "gauge",
        "Number of open file descriptors.",
        open_fds,
    );
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let max_fds = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .and_then(|line| line.split_whitespace().nth(3))
        .and_then(|soft| soft.parse::<f64>().ok());
    add(
        "process_max_fds",
        "gauge",
        "Maximum number of open file descriptors.",
        max_fds,
    );
    let boot_time = std::fs::read_to_string("/proc/stat").ok().and_then(|text| {
        text.lines()
            .find_map(|line| line.strip_prefix("btime "))
            .and_then(|s| s.trim().parse::<f64>().ok())
    });
    let start = boot_time
        .zip(field(19))
        .map(|(boot, ticks)| boot + ticks / TICKS_PER_SECOND);
    add(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
        start,
    );
}

/// The fields of `/proc/self/stat` after the command name (which may hold
/// spaces and parentheses): index 0 is the state, 11 utime, 12 stime, 19
/// starttime.
fn stat_fields(stat: &str) -> Vec<String> {
    stat.rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

fn status_kib(status: &str, key: &str) -> Option<f64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_metrics_render_with_plausible_values() {
        let mut body = String::new();
        render(&mut body);
        let value = |name: &str| -> f64 {
            body.lines()
                .find_map(|line| line.strip_prefix(&format!("{name} ")))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} missing in:\n{body}"))
        };
        assert!(value("process_resident_memory_bytes") > 1024.0 * 1024.0);
        assert!(value("process_open_fds") >= 3.0);
        assert!(value("process_max_fds") >= value("process_open_fds"));
        assert!(value("process_cpu_seconds_total") >= 0.0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs_f64();
        let started = value("process_start_time_seconds");
        assert!(
            started <= now + 1.0 && started > now - 86_400.0 * 365.0,
            "{started} vs {now}"
        );
    }

    #[test]
    fn a_command_name_with_spaces_and_parentheses_does_not_shift_the_fields() {
        let fields = stat_fields("42 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 11 12");
        assert_eq!(fields[0], "S");
        assert_eq!(fields[11], "11");
    }
}
