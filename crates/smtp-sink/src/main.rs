//! `smtp-sink`: accept mail on a local port and report how fast it arrives.
//!
//! Prints `listening=ADDR` once, then `accepted=N seconds=S rate=R` every `--report-every`
//! messages and once more at the end (Ctrl-C or `--exit-after`). The clock starts at the first
//! message, so the rate is the sender's, not the idle time before it.

use clap::Parser;
use smtp_sink::{Sink, SinkOptions, TlsMode};
use std::cell::Cell;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(version, about = "A local SMTP server that accepts and counts mail (for tests and benchmarks)")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:2525")]
    listen: SocketAddr,
    /// Keep no message bodies, only count them.
    #[arg(long)]
    count_only: bool,
    /// Print the count and rate every N messages (0: only at the end).
    #[arg(long, default_value_t = 10_000)]
    report_every: u64,
    /// Exit after N messages.
    #[arg(long)]
    exit_after: Option<u64>,
    /// Offer STARTTLS with a self-signed certificate.
    #[arg(long, conflicts_with = "implicit_tls")]
    starttls: bool,
    /// Speak TLS from the first byte, with a self-signed certificate.
    #[arg(long)]
    implicit_tls: bool,
    /// Require AUTH with USER:PASSWORD.
    #[arg(long, value_name = "USER:PASSWORD")]
    auth: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let tls = match (args.starttls, args.implicit_tls) {
        (true, _) => TlsMode::Starttls,
        (_, true) => TlsMode::Implicit,
        _ => TlsMode::None,
    };
    let credentials = match args.auth.as_deref().map(|a| a.split_once(':')) {
        None => None,
        Some(Some((u, p))) => Some((u.to_owned(), p.to_owned())),
        Some(None) => {
            eprintln!("--auth takes USER:PASSWORD");
            return ExitCode::from(2);
        }
    };
    let options = SinkOptions { listen: args.listen, tls, credentials, count_only: args.count_only };
    let sink = match Sink::try_start(options).await {
        Ok(sink) => sink,
        Err(e) => {
            eprintln!("cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    println!("listening={}", sink.addr());
    let first = Cell::new(None);
    tokio::select! {
        _ = report(&sink, args.report_every, args.exit_after, &first) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    print_line(first.get(), sink.count());
    ExitCode::SUCCESS
}

fn print_line(first: Option<Instant>, count: u64) {
    let secs = first.map(|t| t.elapsed().as_secs_f64()).unwrap_or(0.0);
    let rate = if secs > 0.0 { count as f64 / secs } else { 0.0 };
    println!("accepted={count} seconds={secs:.3} rate={rate:.1}");
}

/// Reports progress until `exit_after` messages arrived (forever without it); `first` is when
/// the first message arrived.
async fn report(sink: &Sink, every: u64, exit_after: Option<u64>, first: &Cell<Option<Instant>>) {
    const FOREVER: Duration = Duration::from_secs(365 * 24 * 3600);
    let mut next = if every > 0 { every } else { u64::MAX };
    loop {
        let target = next.min(exit_after.unwrap_or(u64::MAX)).min(if first.get().is_none() { 1 } else { u64::MAX });
        sink.wait_for(target, FOREVER).await;
        if first.get().is_none() {
            first.set(Some(Instant::now()));
        }
        let count = sink.count();
        if exit_after.is_some_and(|n| count >= n) {
            return;
        }
        if count >= next {
            print_line(first.get(), count);
            while next <= count {
                next = next.saturating_add(every);
            }
        }
    }
}
