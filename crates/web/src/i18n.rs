//! The UI's strings, in English and Simplified Chinese, in one catalogue.
//!
//! Each entry names a key and its text in both languages on one line, and
//! [`Text`] is a struct with one field per key: a template that uses a key
//! that does not exist does not compile, and a key cannot exist in one
//! language only.

/// The languages of the interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    En,
    /// Simplified Chinese.
    Zh,
}

impl Lang {
    /// Every language, in the order the switcher lists them.
    pub const ALL: [Lang; 2] = [Lang::En, Lang::Zh];

    /// The code used in the cookie, the URL and `<html lang>`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh-CN",
        }
    }

    /// The language's name in itself, for the switcher.
    pub fn own_name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::Zh => "简体中文",
        }
    }

    /// A code from the language cookie or URL; `zh*` is Chinese.
    pub fn from_code(code: &str) -> Option<Lang> {
        let code = code.trim().to_ascii_lowercase();
        if code.starts_with("zh") {
            Some(Lang::Zh)
        } else if code.starts_with("en") {
            Some(Lang::En)
        } else {
            None
        }
    }

    /// The language an `Accept-Language` header asks for: the first of its
    /// languages (by quality, then order) that is Chinese or English;
    /// English when none is.
    pub fn from_accept_language(header: &str) -> Lang {
        let mut best: Option<(f32, Lang)> = None;
        for part in header.split(',') {
            let mut fields = part.split(';');
            let tag = fields.next().unwrap_or("").trim();
            let q = fields
                .find_map(|f| f.trim().strip_prefix("q="))
                .and_then(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if let Some(lang) = Lang::from_code(tag)
                && q > 0.0
                && best.is_none_or(|(bq, _)| q > bq)
            {
                best = Some((q, lang));
            }
        }
        best.map(|(_, l)| l).unwrap_or_default()
    }

    /// The strings of this language.
    pub fn text(self) -> &'static Text {
        match self {
            Lang::En => &EN,
            Lang::Zh => &ZH,
        }
    }
}

macro_rules! catalogue {
    ($($key:ident: $en:literal, $zh:literal;)+) => {
        /// Every UI string, one field per key.
        #[derive(Debug)]
        pub struct Text {
            $(#[doc = $en] pub $key: &'static str,)+
        }

        /// English.
        pub static EN: Text = Text { $($key: $en,)+ };
        /// Simplified Chinese.
        pub static ZH: Text = Text { $($key: $zh,)+ };

        impl Text {
            /// Every key with its text, for checking the catalogue.
            pub fn entries(&self) -> Vec<(&'static str, &'static str)> {
                vec![$((stringify!($key), self.$key),)+]
            }
        }
    };
}

catalogue! {
    app_name: "Ferry", "Ferry";
    nav_dashboard: "Dashboard", "概览";
    nav_projects: "Projects", "项目";
    nav_fleet: "Fleet", "版本矩阵";
    nav_hosts: "Hosts", "主机";
    nav_audit: "Audit log", "审计日志";
    sign_in: "Sign in", "登录";
    sign_out: "Sign out", "退出登录";
    signed_in_as: "Signed in as", "当前用户";
    user_name: "User name", "用户名";
    password: "Password", "密码";
    wrong_login: "Wrong user name or password.", "用户名或密码错误。";
    language: "Language", "语言";
    recent_builds: "Recent builds", "最近构建";
    recent_deployments: "Recent deployments", "最近部署";
    running_rollouts: "Running rollouts", "进行中的发布";
    waiting_promotion: "waiting for promotion; promote with", "等待推进；推进命令";
    hosts_offline: "Hosts offline", "离线主机";
    none_yet: "None yet.", "暂无。";
    nothing_running: "Nothing is running.", "没有进行中的发布。";
    all_hosts_online: "Every host is online.", "所有主机在线。";
    project: "Project", "项目";
    projects_title: "Projects", "项目";
    no_projects: "You are not a member of any project.", "您还不是任何项目的成员。";
    your_role: "Your role", "您的角色";
    role_admin: "administrator", "管理员";
    role_owner: "owner", "所有者";
    role_developer: "developer", "开发者";
    role_viewer: "viewer", "查看者";
    live_on: "live", "实时更新中";
    live_polling: "updating every few seconds", "每隔几秒更新";
    environments: "Environments", "环境";
    environment: "Environment", "环境";
    production: "production", "生产";
    current_version: "Current version", "当前版本";
    selector: "Hosts", "主机选择";
    builds: "Builds", "构建";
    build: "Build", "构建";
    deployments_by_build: "Deployments by build", "按构建分组的部署";
    deployment: "Deployment", "部署";
    deployments: "Deployments", "部署";
    version: "Version", "版本";
    status: "Status", "状态";
    git_ref: "Ref", "分支/标签";
    commit: "Commit", "提交";
    started_by: "By", "发起人";
    created: "Created", "创建时间";
    started: "Started", "开始时间";
    finished: "Finished", "结束时间";
    kind: "Kind", "类型";
    no_build: "no build", "无构建";
    build_log: "Build log", "构建日志";
    log_empty: "No output yet.", "暂无输出。";
    live: "live", "实时";
    following: "Following the end of the log; scroll up to pause.", "正在跟随日志末尾；向上滚动可暂停。";
    artifact: "Release", "发布版本";
    error: "Error", "错误";
    batch: "Batch", "批次";
    batches: "Batches", "批次";
    host: "Host", "主机";
    hosts: "Hosts", "主机";
    state: "State", "状态";
    downloaded: "Downloaded", "下载量";
    reused: "Reused", "复用量";
    history: "History", "历史";
    hold: "Waiting for", "等待";
    paused: "paused", "已暂停";
    pause: "Pause", "暂停";
    resume: "Resume", "继续";
    cancel: "Cancel", "取消";
    promote: "Promote to the next batch", "进入下一批";
    refreshing: "Refreshes by itself while the deployment runs.", "部署进行中，页面自动刷新。";
    fleet_title: "Which version runs where", "各主机运行的版本";
    fleet_help: "One row per host, one column per environment. Dashed: the host does not run the version it should. Struck through: offline.",
        "每行一台主机，每列一个环境。虚线框：主机运行的版本与期望不符。删除线：离线。";
    not_deployed: "—", "—";
    tags: "Tags", "标签";
    online: "online", "在线";
    offline: "offline", "离线";
    agent_version: "Agent", "Agent 版本";
    last_seen: "Last seen", "最近心跳";
    runs: "Runs", "运行";
    no_hosts: "No host has joined yet.", "还没有主机加入。";
    audit_title: "Audit log", "审计日志";
    filter: "Filter", "筛选";
    since: "Since", "起始时间";
    actor: "Who", "操作人";
    source: "From", "来源";
    action: "Action", "操作";
    object: "Object", "对象";
    outcome: "Outcome", "结果";
    summary: "What", "内容";
    w_queued: "queued", "排队中";
    w_pending: "pending", "等待中";
    w_running: "running", "进行中";
    w_succeeded: "succeeded", "成功";
    w_failed: "failed", "失败";
    w_rolled_back: "rolled back", "已回滚";
    w_canceled: "canceled", "已取消";
    w_skipped: "skipped (offline)", "已跳过（离线）";
    w_deploy: "deploy", "部署";
    w_rollback: "rollback", "回滚";
    no_entries: "No entries.", "没有记录。";
    forbidden: "You may not do this.", "您没有权限执行此操作。";
    not_found: "Not found.", "未找到。";
    go_back: "Back to the dashboard", "返回概览";
    error_title: "Something went wrong", "出错了";
    start_build: "Build", "构建";
    build_ref_help: "Branch, tag or commit", "分支、标签或提交";
    retry: "Retry", "重试";
    retry_failed: "Retry on the hosts that did not succeed", "在未成功的主机上重试";
    all: "All", "全部";
    stats_title: "Deployments, last 30 days", "最近 30 天的部署";
    stat_succeeded: "succeeded", "成功";
    stat_failed: "failed", "失败";
    stat_rolled_back: "rolled back", "已回滚";
    stat_canceled: "canceled", "已取消";
    delivery_title: "Delivery, last 30 days", "最近 30 天的交付";
    emergency_rollback: "Emergency rollback", "紧急回滚";
    emergency_help: "Every host at once, no approval; needs the production right, and is recorded and announced to the project", "所有主机同时回滚，无需审批；需要生产环境权限，并会被记录和通知整个项目";
    deploys_per_day: "Deploys per day", "每日部署次数";
    lead_time: "Lead time", "变更前置时间";
    change_failure_rate: "Change failure rate", "变更失败率";
    time_to_restore: "Time to restore", "恢复时间";
    deploy_log: "What the hosts logged", "主机日志";
    deploy: "Deploy", "部署";
    deploy_title: "Deploy", "发起部署";
    release_to_deploy: "Release", "发布版本";
    marked_bad: "marked bad", "已标记为有问题";
    strategy: "Strategy", "发布策略";
    strategy_default: "The environment's", "使用环境默认";
    batch_size: "Batch size (rolling: N or N%)", "每批数量（滚动发布：N 或 N%）";
    approve_each_batch: "Wait for a promotion after each batch", "每批完成后等待确认";
    target_hosts: "Hosts", "目标主机";
    all_hosts_of_env: "Every host of the environment", "环境中的所有主机";
    chosen_hosts: "Only the hosts ticked below", "仅下方勾选的主机";
    tag_filter: "Filter hosts by tag (e.g. dc=bj)", "按标签筛选主机（例如 dc=bj）";
    no_release: "No release to deploy yet.", "还没有可部署的版本。";
    roll_back: "Roll back to the previous version", "回滚到上一个版本";
    // Confirmations, the rollback's targets, the deploy dialog's hosts.
    roll_back_to: "Roll back to", "回滚到";
    emergency_rollback_to: "Emergency rollback to", "紧急回滚到";
    confirm_rollback: "Roll back", "回滚";
    confirm_emergency: "Emergency rollback", "紧急回滚";
    rollback_explain: "Each host goes back to the version it last ran successfully before its current one. Nothing changes until you confirm.", "每台主机回到它当前版本之前最后成功运行的版本。确认之前不会有任何改变。";
    emergency_explain: "Every host at once: no approval, no batches, past freezes, and a running deployment of this environment stops. It needs the production right, and is recorded with your reason and announced to the project.", "所有主机同时回滚：无需审批、不分批、不受冻结限制，本环境正在进行的部署会停止。需要生产环境权限，会连同原因一起记录并通知整个项目。";
    runs_now: "Runs now", "当前运行";
    goes_to: "Goes to", "将变为";
    stays_already: "stays: already runs", "不变：已在运行";
    stays_nothing: "stays: no earlier version to go back to", "不变：没有可回退的更早版本";
    nothing_to_roll_back: "Nothing to roll back: no host would change.", "没有可回滚的内容：没有主机会改变。";
    emergency_reason: "Reason (recorded in the audit trail)", "原因（记入审计日志）";
    plan_changed: "What this would do has changed since the page was shown: here it is again. Nothing was done.", "页面显示之后计划已发生变化，现重新显示。尚未执行任何操作。";
    back_to_project: "Back to the project", "返回项目";
    drift: "drift", "漂移";
    next_watch: "Follow deployment", "查看部署";
    next_approve: "Review request", "审阅请求";
    rollout_title: "Rollout", "发布进度";
    next_step: "Next", "下一步";
    step_batch_running: "Hosts at work in batch", "正在执行的批次";
    step_paused: "Paused: nothing starts until it is resumed.", "已暂停：恢复之前不会开始任何操作。";
    step_soak: "The canary soaks; the next batch starts by itself at", "金丝雀观察中；下一批将自动开始于";
    step_gate: "Waiting at the gate: the next batch starts when someone promotes it.", "在关口等待：有人晋级后下一批才开始。";
    step_pause_until: "Pause between batches; the next starts at", "批次间暂停；下一批开始于";
    step_start_batch: "Starting batch", "正在开始批次";
    step_roll_back: "Rolling back the hosts it updated:", "正在回滚已更新的主机：";
    step_finish: "Ending.", "即将结束。";
    confirm_remove_member: "Remove member", "移除成员";
    remove_member_explain: "They lose their role in this project at once: what it let them see and do.", "该用户将立即失去在本项目中的角色，以及该角色允许的查看和操作权限。";
    show_hosts: "Show its hosts", "显示主机";
    env_changed: "The environment was changed: these are its hosts. Check them, then deploy.", "环境已更改：以下是该环境的主机。请核对后再部署。";
    deploy_this_build: "Deploy what this build made", "部署此构建的产物";
    nav_requests: "Requests", "发布申请";
    requests_waiting: "Waiting for me", "待我处理";
    requests_mine: "My requests", "我的申请";
    requests_open: "Open requests", "进行中的申请";
    request: "Request", "申请";
    request_release: "Request a release", "申请发布";
    request_rollback: "Ask for a rollback instead", "改为申请回滚";
    request_reason: "What and why", "内容与原因";
    requester: "Requester", "申请人";
    reason: "Reason", "原因";
    note: "Note", "备注";
    tested_on: "Tested on", "测试环境";
    versions_by_env: "Versions by environment", "各环境版本";
    comes_after: "after", "上游";
    mixed_versions: "mixed", "版本不一";
    failing_services: "Failing services", "服务异常";
    service_failing_since: "failing since", "异常开始于";
    service_stderr: "Last lines of its stderr", "标准错误输出最后几行";
    promote_env: "Promote", "晋级";
    promote_help: "Deploy the version of the environment before to this one", "将上游环境的版本部署到此环境";
    waiting_for: "Waiting for", "等待";
    who: "Who", "操作人";
    when: "When", "时间";
    no_requests: "No requests.", "没有申请。";
    requires_approval: "requires approval", "需审批";
    submit_request: "Submit the request", "提交申请";
    rollback_to: "Roll back to (empty: the previous good version)", "回滚到（留空：上一个正常版本）";
    a_pass: "Pass", "测试通过";
    a_send_back: "Send back", "打回";
    a_resubmit: "Submit a new version", "提交新版本";
    a_approve: "Approve", "批准";
    a_reject: "Reject", "拒绝";
    a_release: "Release", "执行发布";
    a_withdraw: "Withdraw", "撤回";
    wait_testing: "a tester: pass it, or send it back", "测试人员：通过或打回";
    wait_sent_back: "its requester: submit a fixed version", "申请人：提交修复后的版本";
    wait_awaiting_approval: "an approver other than its requester: approve or reject", "申请人以外的审批人：批准或拒绝";
    wait_approved: "its requester: release it", "申请人：执行发布";
    wait_releasing: "its deployment to finish", "部署完成";
    wait_failed: "its requester: release it again, or withdraw it", "申请人：重新发布或撤回";
    wait_closed: "nothing: it is closed", "无：申请已关闭";
    w_testing: "testing", "测试中";
    w_sent_back: "sent back", "已打回";
    w_awaiting_approval: "awaiting approval", "待审批";
    w_approved: "approved", "已批准";
    w_rejected: "rejected", "已拒绝";
    w_releasing: "releasing", "发布中";
    w_done: "done", "已完成";
    w_withdrawn: "withdrawn", "已撤回";
    w_release: "release", "发布";
    w_create: "created", "创建";
    w_staging: "staging updated", "测试环境已更新";
    w_deployment: "deployment started", "部署已开始";
    nav_users: "Users", "用户";
    nav_tokens: "API tokens", "API 令牌";
    members: "Members", "成员";
    role: "Role", "角色";
    add_member: "Add or change", "添加或修改";
    remove: "Remove", "移除";
    create_user: "Create user", "创建用户";
    administrator: "Administrator", "管理员";
    production_right: "Production right", "生产环境权限";
    disabled: "disabled", "已停用";
    disable: "Disable", "停用";
    enable: "Enable", "启用";
    yes: "yes", "是";
    token_name: "Token name", "令牌名称";
    create_token: "Create token", "创建令牌";
    revoke: "Revoke", "吊销";
    new_token_once: "Your new token. Copy it now: it is not shown again.", "新令牌如下。请立即复制：之后不会再显示。";
    no_tokens: "You have no API tokens.", "您还没有 API 令牌。";
    create_project: "Create project", "创建项目";
    project_name: "Name", "名称";
    repo_url: "Git repository (optional)", "Git 仓库（可选）";
    create_env: "Add environment", "添加环境";
    env_selector_help: "Host tags, e.g. role=web,env=prod", "主机标签，例如 role=web,env=prod";
    // Status codes (`ferry_domain::status::Note`), rendered by the
    // server's `ui/notes.rs`: `{name}` is filled with the code's argument.
    n_created: "created by {by}: {hosts} host(s) in {batches} batch(es), {rollout}", "由 {by} 创建：{hosts} 台主机，分 {batches} 批，{rollout}";
    // A rollout policy, in the words `RolloutPolicy::describe` uses.
    p_all_at_once: "all at once", "一次全部";
    p_one_at_a_time: "one at a time", "逐台";
    p_rolling: "rolling, batches of {batch}", "滚动，每批 {batch}";
    p_canary_count: "{n} host(s)", "{n} 台主机";
    p_canary_select: "hosts {sel}", "主机 {sel}";
    p_gate_soak: "promote, or {s} s healthy", "推进，或健康运行 {s} 秒";
    p_gate: "promote", "推进";
    p_batches_of: "batches of {batch}", "每批 {batch}";
    p_canary: "canary: {first} first, then {gate}, then the rest {rest}", "金丝雀：先 {first}，然后{gate}，其余{rest}";
    p_grouped_batches: "grouped by {tag}, batches of {batch} within each group", "按 {tag} 分组，组内每批 {batch}";
    p_grouped: "grouped by {tag}", "按 {tag} 分组";
    p_stop_first: "; stop at the first failure", "；首次失败即停止";
    p_stop_count: "; stop after more than {n} failed host(s)", "；失败超过 {n} 台主机后停止";
    p_stop_percent: "; stop after more than {p}% failed", "；失败超过 {p}% 后停止";
    p_put_back: ", then put updated hosts back", "，然后将已更新的主机恢复";
    p_leave: ", leaving hosts as they are", "，主机保持原样";
    p_pause: "; {s} s between batches", "；批次之间间隔 {s} 秒";
    p_approve_each: "; each batch waits for promote", "；每批等待推进";
    n_skipped_offline: "{hosts} host(s) offline at the start skipped", "开始时离线的 {hosts} 台主机已跳过";
    n_batch_started: "batch {batch} of {of} started: {hosts} host(s)", "第 {batch}/{of} 批已开始：{hosts} 台主机";
    n_ended: "{status}: {reason}", "{status}：{reason}";
    n_already_runs: "left as is: {host} already runs {version}", "保持原样：{host} 已在运行 {version}";
    n_nothing_earlier: "left as is: {host} has no earlier successfully deployed version to roll back to", "保持原样：{host} 没有更早的成功部署版本可回滚";
    n_nothing_earlier_not_bad: "left as is: {host} has no earlier successfully deployed version that is not marked bad to roll back to", "保持原样：{host} 没有更早的、未标记为有问题的成功部署版本可回滚";
    n_promotion_skipped: "promotion order skipped by {by} (version {version} need not have succeeded on '{upstream}'): {reason}", "{by} 跳过了推广顺序（版本 {version} 无需先在“{upstream}”成功）：{reason}";
    n_paused_by_operator: "paused by an operator", "已被操作员暂停";
    n_resumed_by_operator: "resumed by an operator", "已被操作员恢复";
    n_cancel_asked: "cancel asked by an operator", "操作员已请求取消";
    n_promoted_by_operator: "promoted by an operator", "已被操作员推进";
    n_batch_at_work: "batch {batch} of {of} at work", "第 {batch}/{of} 批进行中";
    n_paused: "paused (ferry deployment resume)", "已暂停（ferry deployment resume）";
    n_awaiting_promotion: "waiting for promote before batch {batch}", "等待推进后开始第 {batch} 批";
    n_awaiting_promotion_until: "waiting for promote before batch {batch}, or until {until}", "等待推进后开始第 {batch} 批，或等到 {until}";
    n_pausing_until: "pausing before batch {batch} until {until}", "第 {batch} 批开始前暂停至 {until}";
    n_draining: "letting connections to batch {batch} drain", "正在等待第 {batch} 批的连接排空";
    n_awaiting_load_balancer: "waiting for the load balancer to take batch {batch} out", "等待负载均衡器摘除第 {batch} 批";
    n_load_balancer_failed: "load balancer: {error} (fix it, or cancel the deployment)", "负载均衡器：{error}（请修复，或取消部署）";
    n_hosts_failed: "{failed} of {total} host(s) failed", "{total} 台主机中 {failed} 台失败";
    n_too_many_failed: "{failed} of {total} host(s) failed (at most {at_most} may fail)", "{total} 台主机中 {failed} 台失败（最多允许 {at_most} 台失败）";
    n_too_many_failed_percent: "{failed} of {total} host(s) failed (at most {at_most}% may fail)", "{total} 台主机中 {failed} 台失败（最多允许 {at_most}% 失败）";
    n_canceled_by_operator: "canceled by an operator", "已被操作员取消";
    n_emergency_took_over: "an emergency rollback took over", "紧急回滚已接管";
    n_skipped_at_start: "offline at the start: skipped; it gets this release when it returns if the deployment succeeds", "开始时离线：已跳过；若部署成功，主机恢复在线后会获得此版本";
    n_not_started: "not started: {reason}", "未开始：{reason}";
    n_deployment_ended: "the deployment ended", "部署已结束";
    n_put_back: "put back on its previous release", "已恢复到之前的版本";
    n_nothing_to_put_back: "no earlier release to put back; left as is", "没有更早的版本可恢复；保持原样";
    n_offline_timed_out: "host offline: no heartbeat within the offline timeout; it will converge when it reconnects", "主机离线：在离线超时内没有心跳；重新连接后会自动收敛";
    n_stopped_answering: "host stopped answering during its batch: {missed} heartbeats missed ({silent_ms} ms silent)", "主机在其批次中停止响应：错过 {missed} 次心跳（静默 {silent_ms} 毫秒）";
}

impl Text {
    /// A state or kind as the server names it (`running`, `rolled_back`,
    /// `rollback` ...) in this language; an unknown word as it is.
    pub fn word<'a>(&'a self, word: &'a str) -> &'a str {
        match word {
            "queued" => self.w_queued,
            "pending" => self.w_pending,
            "running" => self.w_running,
            "succeeded" => self.w_succeeded,
            "failed" => self.w_failed,
            "rolled_back" => self.w_rolled_back,
            "canceled" => self.w_canceled,
            "skipped" => self.w_skipped,
            "deploy" => self.w_deploy,
            "rollback" => self.w_rollback,
            "testing" => self.w_testing,
            "sent_back" => self.w_sent_back,
            "awaiting_approval" => self.w_awaiting_approval,
            "approved" => self.w_approved,
            "rejected" => self.w_rejected,
            "releasing" => self.w_releasing,
            "done" => self.w_done,
            "withdrawn" => self.w_withdrawn,
            "release" => self.w_release,
            "create" => self.w_create,
            "staging" => self.w_staging,
            "deployment" => self.w_deployment,
            "pass" => self.a_pass,
            "send-back" => self.a_send_back,
            "resubmit" => self.a_resubmit,
            "approve" => self.a_approve,
            "reject" => self.a_reject,
            "withdraw" => self.a_withdraw,
            "owner" => self.role_owner,
            "developer" => self.role_developer,
            "viewer" => self.role_viewer,
            "admin" => self.role_admin,
            "succeed" => self.w_succeeded,
            "fail" => self.w_failed,
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_languages_have_every_key_with_text() {
        let (en, zh) = (EN.entries(), ZH.entries());
        assert_eq!(en.len(), zh.len());
        for ((ke, te), (kz, tz)) in en.iter().zip(&zh) {
            assert_eq!(ke, kz);
            assert!(!te.trim().is_empty() && !tz.trim().is_empty(), "{ke} is empty in a language");
        }
        // Chinese text is Chinese, except names and symbols that read the
        // same in both.
        // `n_ended` is a status word and a reason, each translated.
        let same = ["app_name", "not_deployed", "n_ended"];
        for (key, text) in zh {
            let cjk = text.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c));
            assert!(cjk || same.contains(&key), "{key} is not translated: {text}");
        }
    }

    #[test]
    fn accept_language_picks_chinese_for_any_zh() {
        assert_eq!(Lang::from_accept_language("zh-CN,zh;q=0.9,en;q=0.8"), Lang::Zh);
        assert_eq!(Lang::from_accept_language("zh-TW"), Lang::Zh);
        assert_eq!(Lang::from_accept_language("en-US,en;q=0.9"), Lang::En);
        assert_eq!(Lang::from_accept_language("fr-FR, zh;q=0.5"), Lang::Zh);
        assert_eq!(Lang::from_accept_language("en;q=0.4, zh;q=0.8"), Lang::Zh);
        assert_eq!(Lang::from_accept_language("de"), Lang::En);
        assert_eq!(Lang::from_accept_language(""), Lang::En);
        assert_eq!(Lang::from_code("zh-CN"), Some(Lang::Zh));
        assert_eq!(Lang::from_code("xx"), None);
        assert_eq!(ZH.word("rolled_back"), "已回滚");
        assert_eq!(EN.word("rolled_back"), "rolled back");
        assert_eq!(EN.word("skipped"), "skipped (offline)");
        assert_eq!(ZH.word("something new"), "something new");
    }
}
