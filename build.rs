//! Stamps what `--version` and `quarry_build_info` report into the binary: the git revision
//! and branch, who built it and when (`SOURCE_DATE_EPOCH` for reproducible builds), rustc's
//! version and the platform.

use std::process::Command;

fn output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn main() {
    let revision = std::env::var("QUARRY_REVISION")
        .ok()
        .or_else(|| output("git", &["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rustc_version = output(&rustc, &["--version"])
        .and_then(|v| v.split_whitespace().nth(1).map(str::to_owned))
        .unwrap_or_else(|| "unknown".into());
    let branch = std::env::var("QUARRY_BRANCH")
        .ok()
        .or_else(|| output("git", &["rev-parse", "--abbrev-ref", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    let user = std::env::var("QUARRY_BUILD_USER").unwrap_or_else(|_| {
        let name = std::env::var("USER")
            .ok()
            .or_else(|| output("id", &["-un"]))
            .unwrap_or_else(|| "unknown".into());
        let host = output("hostname", &[]).unwrap_or_else(|| "unknown".into());
        format!("{name}@{host}")
    });
    let epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0)
        });
    let arch = match std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("x86_64") => "amd64".to_owned(),
        Ok("aarch64") => "arm64".to_owned(),
        Ok(other) => other.to_owned(),
        Err(_) => "unknown".to_owned(),
    };
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_else(|_| "unknown".into());
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let platform = if env.is_empty() || env == "gnu" {
        format!("{os}/{arch}")
    } else {
        format!("{os}/{arch} ({env})")
    };
    println!("cargo:rustc-env=QUARRY_REVISION={revision}");
    println!("cargo:rustc-env=QUARRY_BRANCH={branch}");
    println!("cargo:rustc-env=QUARRY_BUILD_USER={user}");
    println!("cargo:rustc-env=QUARRY_BUILD_DATE={}", format_date(epoch));
    println!("cargo:rustc-env=QUARRY_PLATFORM={platform}");
    println!("cargo:rustc-env=QUARRY_RUSTC_VERSION={rustc_version}");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    println!("cargo:rerun-if-env-changed=QUARRY_REVISION");
    println!("cargo:rerun-if-env-changed=QUARRY_BRANCH");
    println!("cargo:rerun-if-env-changed=QUARRY_BUILD_USER");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
}

/// `20261128-07:45:00` (UTC), the form Prometheus components print.
fn format_date(epoch: i64) -> String {
    let (days, seconds) = (epoch.div_euclid(86_400), epoch.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}-{:02}:{:02}:{:02}",
        seconds / 3600,
        seconds % 3600 / 60,
        seconds % 60
    )
}
