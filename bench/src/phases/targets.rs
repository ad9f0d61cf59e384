//! The targets: each figure the project aims for, measured against its
//! aim (recorded, never gated: only the deterministic checks decide the
//! exit status).

use crate::phases::hold::Hold;
use crate::phases::ratios::Ratios;
use crate::phases::scaling::Scaling;
use crate::report::Report;
use crate::sliced::Round;

pub fn record(
    ratios: &Ratios,
    holds: &[Hold],
    scaling: Option<Scaling>,
    translation: &Result<f64, String>,
    rep: &mut Report,
) {
    let k = &ratios.med[0];
    let by = |name: &str| ratios.names.iter().position(|n| n == name);
    let hold = |name: &str| holds.iter().find(|h| h.name == name);
    let epoll = by("epoll");
    let tokio = by("tokio");
    // Compared as shown (3 decimals), so float noise in exact counts (3.0
    // syscalls - 2.0) cannot turn "1.000" into a miss.
    let cmp = |v: Option<f64>, limit: f64, le: bool| -> Option<bool> {
        v.filter(|x| x.is_finite())
            .map(|x| (x * 1000.0).round() / 1000.0)
            .map(|x| if le { x <= limit } else { x >= limit })
    };
    let f = |v: Option<f64>, d: usize| v.map_or("n/a".into(), |x| format!("{x:.d$}"));
    let mut row = |name: &str, want: &str, v: Option<f64>, met: Option<bool>, d: usize| {
        rep.target(name, want, f(v, d), met);
    };
    let r = epoll.map(|e| ratios.cpu_ratio[e]);
    row(
        "kq/epoll server CPU per message",
        "<= 1.05x",
        r,
        cmp(r, 1.05, true),
        3,
    );
    let r = epoll.map(|e| ratios.msgs_ratio[e]);
    row("kq/epoll throughput", ">= 0.95x", r, cmp(r, 0.95, false), 3);
    let r = epoll.and_then(|e| Some(k.sys_msg? - ratios.med[e].sys_msg?));
    row(
        "kq - epoll syscalls per message",
        "<= +1",
        r,
        cmp(r, 1.0, true),
        3,
    );
    // The deterministic part of that difference: all but the waits.
    let besides = |r: &Round| Some(r.sys_msg? - r.sys_kinds?[2]);
    let r = epoll.and_then(|e| Some(besides(k)? - besides(&ratios.med[e])?));
    row(
        "  the same, besides epoll_wait",
        "<= +1",
        r,
        cmp(r, 1.0, true),
        3,
    );
    let r = tokio.map(|t| ratios.msgs_ratio[t]);
    row("kq/tokio throughput", ">= 1.0x", r, cmp(r, 1.0, false), 3);
    let kh = hold(&ratios.names[0]);
    let r = kh.and_then(|kh| Some(kh.user_b / hold("tokio")?.user_b));
    row(
        "kq/tokio user memory per idle connection",
        "<= 0.125x",
        r,
        cmp(r, 0.125, true),
        3,
    );
    let r = kh.filter(|h| h.n >= 10000).map(|h| h.connect_s);
    row(
        "10000 connections accepted (kq, phase D), s",
        "<= 1 s",
        r,
        cmp(r, 1.0, true),
        3,
    );
    let r = kh.map(|h| h.user_b);
    row(
        "kq user memory per idle connection, B",
        "<= 256 B",
        r,
        cmp(r, 256.0, true),
        0,
    );
    let r = scaling.map(|s| s.msgs_ratio);
    row(
        "kq throughput at 10000 / at 100 connections",
        ">= 0.75x",
        r,
        cmp(r, 0.75, false),
        3,
    );
    let r = scaling.map(|s| s.cpu_ratio);
    row(
        "  (kq server CPU/msg at 10000 / at 100)",
        "context",
        r,
        None,
        3,
    );
    match translation {
        Ok(v) => row(
            "translation cost per returned event",
            "<= 150 instr",
            Some(*v),
            cmp(Some(*v), 150.0, true),
            1,
        ),
        Err(e) => rep.target(
            "translation cost per returned event",
            "<= 150 instr",
            e.clone(),
            None,
        ),
    }
}
