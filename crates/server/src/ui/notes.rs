//! Status codes (`ferry_domain::status::Note`) in the reader's language,
//! through the catalogue's `n_*` templates. Text someone else wrote (an
//! agent's error, a row from before codes) is shown as it is.

use ferry_domain::rfc3339_from_millis;
use ferry_domain::rollout::{CanaryPick, FailLimit, RolloutPolicy, Strategy};
use ferry_domain::status::Note;
use ferry_web::i18n::Text;

/// `note` in the language of `t`.
pub fn render(note: &Note, t: &Text) -> String {
    let n = |v: &dyn ToString| v.to_string();
    match note {
        Note::Text { text } => text.clone(),
        Note::Created { by, hosts, batches, policy } => fill(
            t.n_created,
            &[("by", by.clone()), ("hosts", n(hosts)), ("batches", n(batches)), ("rollout", describe(policy, t))],
        ),
        Note::SkippedOffline { hosts } => fill(t.n_skipped_offline, &[("hosts", n(hosts))]),
        Note::BatchStarted { batch, of, hosts } => {
            fill(t.n_batch_started, &[("batch", n(batch)), ("of", n(of)), ("hosts", n(hosts))])
        }
        Note::Ended { status, reason: None } => t.word(status.as_str()).to_string(),
        Note::Ended { status, reason: Some(r) } => {
            fill(t.n_ended, &[("status", t.word(status.as_str()).to_string()), ("reason", render(r, t))])
        }
        Note::AlreadyRuns { host, version } => {
            fill(t.n_already_runs, &[("host", host.clone()), ("version", version.clone())])
        }
        Note::NothingEarlier { host, not_bad } => {
            fill(if *not_bad { t.n_nothing_earlier_not_bad } else { t.n_nothing_earlier }, &[("host", host.clone())])
        }
        Note::PromotionSkipped { by, version, upstream, reason } => fill(
            t.n_promotion_skipped,
            &[
                ("by", by.clone()),
                ("version", version.clone()),
                ("upstream", upstream.clone()),
                ("reason", reason.clone()),
            ],
        ),
        Note::PausedByOperator => t.n_paused_by_operator.into(),
        Note::ResumedByOperator => t.n_resumed_by_operator.into(),
        Note::CancelAsked => t.n_cancel_asked.into(),
        Note::PromotedByOperator => t.n_promoted_by_operator.into(),
        Note::BatchAtWork { batch, of } => fill(t.n_batch_at_work, &[("batch", n(batch)), ("of", n(of))]),
        Note::Paused => t.n_paused.into(),
        Note::AwaitingPromotion { batch, until: None } => fill(t.n_awaiting_promotion, &[("batch", n(batch))]),
        Note::AwaitingPromotion { batch, until: Some(until) } => {
            fill(t.n_awaiting_promotion_until, &[("batch", n(batch)), ("until", rfc3339_from_millis(*until))])
        }
        Note::PausingUntil { batch, until } => {
            fill(t.n_pausing_until, &[("batch", n(batch)), ("until", rfc3339_from_millis(*until))])
        }
        Note::Draining { batch } => fill(t.n_draining, &[("batch", n(batch))]),
        Note::AwaitingLoadBalancer { batch } => fill(t.n_awaiting_load_balancer, &[("batch", n(batch))]),
        Note::LoadBalancerFailed { error } => fill(t.n_load_balancer_failed, &[("error", error.clone())]),
        Note::HostsFailed { failed, total } => fill(t.n_hosts_failed, &[("failed", n(failed)), ("total", n(total))]),
        Note::TooManyFailed { failed, total, at_most, percent } => fill(
            if *percent { t.n_too_many_failed_percent } else { t.n_too_many_failed },
            &[("failed", n(failed)), ("total", n(total)), ("at_most", n(at_most))],
        ),
        Note::CanceledByOperator => t.n_canceled_by_operator.into(),
        Note::EmergencyTookOver => t.n_emergency_took_over.into(),
        Note::SkippedAtStart => t.n_skipped_at_start.into(),
        Note::NotStarted { reason } => {
            let reason = reason.as_ref().map_or_else(|| t.n_deployment_ended.to_string(), |r| render(r, t));
            fill(t.n_not_started, &[("reason", reason)])
        }
        Note::PutBack { before } => after(before.as_deref(), t.n_put_back, t),
        Note::NothingToPutBack { before } => after(before.as_deref(), t.n_nothing_to_put_back, t),
        Note::OfflineTimedOut => t.n_offline_timed_out.into(),
        Note::StoppedAnswering { missed, silent_ms } => {
            fill(t.n_stopped_answering, &[("missed", n(missed)), ("silent_ms", n(silent_ms))])
        }
    }
}

/// A rollout policy in one line, as `RolloutPolicy::describe` says it in
/// English.
fn describe(policy: &RolloutPolicy, t: &Text) -> String {
    let mut s = match &policy.strategy {
        Strategy::AllAtOnce => t.p_all_at_once.to_string(),
        Strategy::OneAtATime => t.p_one_at_a_time.to_string(),
        Strategy::Rolling { batch } => fill(t.p_rolling, &[("batch", batch.to_string())]),
        Strategy::Canary { canary, soak_secs, then } => {
            let first = match canary {
                CanaryPick::Count(n) => fill(t.p_canary_count, &[("n", n.to_string())]),
                CanaryPick::Select(sel) => fill(t.p_canary_select, &[("sel", sel.to_string())]),
            };
            let gate = match soak_secs {
                Some(secs) => fill(t.p_gate_soak, &[("s", secs.to_string())]),
                None => t.p_gate.to_string(),
            };
            let rest = match then {
                Some(b) => fill(t.p_batches_of, &[("batch", b.to_string())]),
                None => t.p_all_at_once.to_string(),
            };
            fill(t.p_canary, &[("first", first), ("gate", gate), ("rest", rest)])
        }
        Strategy::Grouped { tag, batch: Some(b) } => {
            fill(t.p_grouped_batches, &[("tag", tag.clone()), ("batch", b.to_string())])
        }
        Strategy::Grouped { tag, batch: None } => fill(t.p_grouped, &[("tag", tag.clone())]),
    };
    s.push_str(&match policy.max_failed {
        FailLimit::Count(0) => t.p_stop_first.to_string(),
        FailLimit::Count(n) => fill(t.p_stop_count, &[("n", n.to_string())]),
        FailLimit::Percent(p) => fill(t.p_stop_percent, &[("p", p.to_string())]),
    });
    s.push_str(if policy.auto_rollback { t.p_put_back } else { t.p_leave });
    if policy.pause_secs > 0 {
        s.push_str(&fill(t.p_pause, &[("s", policy.pause_secs.to_string())]));
    }
    if policy.approve_each_batch {
        s.push_str(t.p_approve_each);
    }
    s
}

/// `text` on a line of its own after `before`, if there is one.
fn after(before: Option<&Note>, text: &str, t: &Text) -> String {
    match before {
        Some(b) => format!("{}\n{text}", render(b, t)),
        None => text.to_string(),
    }
}

/// `template` with each `{name}` replaced by its value, in one pass: a value
/// that itself holds `{...}` (a user's or an agent's text) stays as it is.
fn fill(template: &str, args: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after_open = &rest[open + 1..];
        match after_open.find('}').and_then(|close| {
            let name = &after_open[..close];
            args.iter().find(|(n, _)| *n == name).map(|(_, v)| (v, close))
        }) {
            Some((value, close)) => {
                out.push_str(value);
                rest = &after_open[close + 1..];
            }
            None => {
                out.push('{');
                rest = after_open;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_domain::DeploymentStatus;
    use ferry_web::Lang;

    #[test]
    fn every_code_has_an_english_and_a_chinese_rendering() {
        for note in Note::examples() {
            let en = render(&note, Lang::En.text());
            let zh = render(&note, Lang::Zh.text());
            for (lang, text) in [("en", &en), ("zh", &zh)] {
                assert!(!text.trim().is_empty(), "{} is empty in {lang}", note.code());
                assert!(!text.contains("{"), "{} has an unfilled argument in {lang}: {text}", note.code());
            }
            if matches!(note, Note::Text { .. }) {
                assert_eq!(en, zh, "text stays as it is");
                continue;
            }
            let cjk = zh.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c));
            assert!(cjk, "{} is not translated: {zh}", note.code());
            // The page's English is the API's, but for status words, which
            // the page writes as words ("rolled back").
            if !matches!(note, Note::Ended { .. }) {
                assert_eq!(en, note.to_string(), "{}", note.code());
            }
        }
    }

    #[test]
    fn policies_read_as_describe_says_them_in_english_and_in_chinese() {
        use ferry_domain::rollout::BatchSize;
        let canary = |soak_secs, then| Strategy::Canary { canary: CanaryPick::Count(1), soak_secs, then };
        let strategies = [
            Strategy::AllAtOnce,
            Strategy::OneAtATime,
            Strategy::Rolling { batch: BatchSize::Percent(25) },
            canary(Some(60), Some(BatchSize::Count(2))),
            canary(None, None),
            Strategy::Canary {
                canary: CanaryPick::Select(ferry_domain::Selector::parse("stage=pre").unwrap()),
                soak_secs: None,
                then: None,
            },
            Strategy::Grouped { tag: "region".into(), batch: Some(BatchSize::Count(2)) },
            Strategy::Grouped { tag: "region".into(), batch: None },
        ];
        for strategy in strategies {
            for (max_failed, auto_rollback, pause_secs, approve_each_batch) in [
                (FailLimit::Count(0), true, 0, false),
                (FailLimit::Count(2), false, 30, true),
                (FailLimit::Percent(10), true, 5, false),
            ] {
                let policy = RolloutPolicy {
                    strategy: strategy.clone(),
                    max_failed,
                    auto_rollback,
                    pause_secs,
                    approve_each_batch,
                };
                assert_eq!(describe(&policy, Lang::En.text()), policy.describe());
                let zh = describe(&policy, Lang::Zh.text());
                assert!(!zh.contains('{') && zh.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)), "{zh}");
            }
        }
    }

    #[test]
    fn arguments_are_filled_once() {
        assert_eq!(fill("a {x} b {y} {z}", &[("x", "{y}".into()), ("y", "2".into())]), "a {y} b 2 {z}");
        assert_eq!(fill("{", &[]), "{");
        assert_eq!(fill("}{x", &[("x", "1".into())]), "}{x");
        let ended =
            Note::Ended { status: DeploymentStatus::RolledBack, reason: Some(Box::new(Note::CanceledByOperator)) };
        assert_eq!(render(&ended, Lang::Zh.text()), "已回滚：已被操作员取消");
        let forged = Note::LoadBalancerFailed { error: "{batch}".into() };
        assert_eq!(render(&forged, Lang::En.text()), "load balancer: {batch} (fix it, or cancel the deployment)");
    }
}
