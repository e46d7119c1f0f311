"""Chinese-first text with English available: one dict, every visible string through ``t``.

Times are shown in Asia/Shanghai whatever the server's own zone is.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from hub.console.i18n_alarms import ALARM_STRINGS
from hub.console.i18n_bulk import BULK_STRINGS
from hub.console.i18n_escalation import ESCALATION_STRINGS
from hub.console.i18n_zones import ZONE_STRINGS

TZ = ZoneInfo("Asia/Shanghai")
LANGS = ("zh", "en")
LANG_COOKIE = "xl_lang"

# key: (中文, English)
STRINGS: dict[str, tuple[str, str]] = {
    "app": ("雪亮工程 · 民勤县运维台", "Xueliang · Minqin operator console"),
    "nav.overview": ("总览", "Overview"),
    "nav.devices": ("设备", "Devices"),
    "nav.events": ("事件", "Events"),
    "nav.alerts": ("告警", "Alerts"),
    "nav.groups": ("联防组", "Groups"),
    "nav.forwarding": ("平台转发", "Forwarding"),
    "nav.users": ("用户", "Users"),
    "nav.rollouts": ("升级", "Updates"),
    "logout": ("退出", "Log out"),
    "lang.other": ("English", "中文"),
    "login.title": ("操作员登录", "Operator login"),
    "login.user": ("用户名", "User name"),
    "login.password": ("密码", "Password"),
    "login.submit": ("登录", "Log in"),
    "login.bad": ("用户名或密码错误", "Wrong user name or password"),
    "login.locked": ("登录失败次数过多，请 {n} 秒后再试", "Too many failed logins; try again in {n} s"),
    "live.paused": ("实时更新已暂停", "Live updates paused"),
    "live.on": ("实时更新", "Live"),
    "live.updated": ("更新于", "Updated"),
    "k.online": ("在线", "Online"),
    "k.offline": ("离线", "Offline"),
    "k.armed": ("布防", "Armed"),
    "k.revoked": ("已吊销", "Revoked"),
    "k.devices": ("设备总数", "Devices"),
    "k.open_alerts": ("未结束联防告警", "Open alerts"),
    "k.open_alarms": ("待处理运维告警", "Open alarms"),
    "k.unacked": ("未确认", "unacknowledged"),
    "k.events_today": ("今日事件", "Events today"),
    "k.persons_today": ("今日有人", "Persons today"),
    "k.panics_today": ("今日紧急求助", "Panics today"),
    "ov.breakdown": ("乡镇 → 村 分布", "Township → village"),
    "ov.worst": ("健康最差的设备", "Worst health first"),
    "ov.problems": ("问题", "Problems"),
    "col.device": ("设备编号", "Device ID"),
    "col.household": ("户", "Household"),
    "col.village": ("村", "Village"),
    "col.township": ("乡镇", "Township"),
    "col.group": ("联防组", "Group"),
    "col.status": ("状态", "Status"),
    "col.last_seen": ("最后在线", "Last seen"),
    "col.temp": ("温度", "Temp."),
    "col.thr": ("降频", "Throttling"),
    "col.fps": ("帧率", "Camera fps"),
    "col.inf": ("推理 ms", "Inference ms"),
    "col.ob": ("待发队列", "Outbox"),
    "col.ver": ("版本", "Version"),
    "col.time": ("时间", "Time"),
    "col.kind": ("类型", "Kind"),
    "col.phase": ("阶段", "Phase"),
    "col.score": ("置信度", "Score"),
    "col.snapshot": ("抓拍", "Snapshot"),
    "col.origin": ("来源", "Origin"),
    "col.raised": ("发起时间", "Raised"),
    "col.response": ("首次响应", "Time to first ack"),
    "col.acked_by": ("响应人", "Acknowledged by"),
    "col.closed": ("结束", "Closed"),
    "col.detail": ("详情", "Detail"),
    "col.action": ("操作", "Action"),
    "col.leader": ("组长户", "Leader"),
    "col.members": ("成员", "Members"),
    "col.alert_count": ("告警数", "Alerts"),
    "col.median_response": ("响应中位数", "Median response"),
    "col.total": ("合计", "Total"),
    "col.name": ("名称", "Name"),
    "col.role": ("角色", "Role"),
    "col.sink": ("通道", "Sink"),
    "col.depth": ("队列深度", "Queue depth"),
    "col.oldest": ("最旧积压", "Oldest item"),
    "col.dead": ("死信", "Dead letters"),
    "col.head_error": ("队首错误", "Head error"),
    "col.attempts": ("尝试次数", "Attempts"),
    "col.error": ("错误", "Error"),
    "col.item": ("条目", "Item"),
    "col.op": ("命令", "Command"),
    "col.sent": ("发送", "Sent"),
    "col.result": ("回执", "Result"),
    "col.user": ("用户", "User"),
    "col.last_login": ("最近登录", "Last login"),
    "st.online": ("在线", "online"),
    "st.offline": ("离线", "offline"),
    "st.revoked": ("已吊销", "revoked"),
    "st.open": ("进行中", "open"),
    "st.closed": ("已结束", "closed"),
    "st.armed": ("布防", "armed"),
    "st.disarmed": ("撤防", "disarmed"),
    "st.disabled": ("已停用", "disabled"),
    "f.search": ("编号/户号", "ID / household"),
    "f.all": ("全部", "All"),
    "f.apply": ("筛选", "Filter"),
    "f.from": ("从", "From"),
    "f.to": ("到", "To"),
    "f.shown": ("显示 {n} / {total}", "Showing {n} of {total}"),
    "f.older": ("更早 →", "Older →"),
    "kind.motion": ("移动", "motion"),
    "kind.person": ("有人", "person"),
    "kind.panic": ("紧急求助", "panic"),
    "kind.tamper": ("遮挡/破坏", "tamper"),
    "kind.test": ("测试", "test"),
    "phase.start": ("开始", "start"),
    "phase.update": ("更新", "update"),
    "phase.end": ("结束", "end"),
    "close.ack": ("邻户响应", "neighbour ack"),
    "close.timeout": ("超时", "timeout"),
    "close.operator": ("操作员", "operator"),
    "dev.health": ("健康历史（24 小时，每格最差值）", "Health history (24 h, worst per bucket)"),
    "dev.now": ("当前", "Now"),
    "dev.commands": ("远程命令", "Commands"),
    "dev.recent_commands": ("最近命令", "Recent commands"),
    "dev.alarms": ("运维告警", "Alarms"),
    "dev.events": ("最近事件", "Recent events"),
    "dev.camera": ("摄像头", "Camera"),
    "dev.load": ("负载", "Load"),
    "dev.mem": ("可用内存 MB", "Free memory MB"),
    "dev.disk": ("剩余空间 MB", "Free disk MB"),
    "dev.rssi": ("信号 dBm", "Signal dBm"),
    "dev.clock": ("时钟", "Clock"),
    "dev.error": ("最近错误", "Last error"),
    "dev.uptime": ("运行时长", "Uptime"),
    "dev.no_health": ("尚无心跳", "No heartbeat yet"),
    "dev.revoke": ("吊销设备", "Revoke device"),
    "dev.revoke_confirm": ("确定吊销该设备？此操作不可撤销。", "Revoke this device? This cannot be undone."),
    "dev.revoked_ok": ("设备已吊销（需同步 CRL/ACL 到代理服务器）", "Device revoked (push CRL/ACL to the broker)"),
    "cmd.snapshot": ("抓拍", "Snapshot"),
    "cmd.arm": ("布防", "Arm"),
    "cmd.disarm": ("撤防", "Disarm"),
    "cmd.identify": ("闪灯识别", "Identify (blink)"),
    "cmd.sent": ("命令已发送：{op}，等待设备回执", "Command sent: {op}; waiting for the device's ack"),
    "cmd.failed": ("命令未发送：{err}", "Command not sent: {err}"),
    "cmd.no_channel": ("命令通道未连接（MQTT）", "No command channel (MQTT not connected)"),
    "cmd.pending": ("等待回执", "waiting"),
    "cmd.ok": ("成功", "ok"),
    "cmd.error": ("失败", "failed"),
    "ev.detail": ("事件详情", "Event"),
    "ev.visit": ("同一访问的各阶段", "Phases of this visit"),
    "ev.no_snapshot": ("无抓拍", "No snapshot"),
    "ev.untrusted": ("设备时钟未同步，按接收时间", "device clock not synced; receive time shown"),
    "al.alerts": ("十户联防告警", "十户联防 alerts"),
    "al.alarms": ("运维告警（设备健康）", "Operator alarms (device health)"),
    "al.ack": ("确认", "Acknowledge"),
    "al.acked": ("{user} 已确认 {time}", "acknowledged by {user} {time}"),
    "al.acked_ok": ("已确认", "Acknowledged"),
    "al.cleared": ("已恢复", "cleared"),
    "al.none": ("没有告警", "No alerts"),
    "al.delayed": ("延迟到达 {age}", "arrived {age} late"),
    "alarm.camera_error": ("摄像头故障", "camera error"),
    "alarm.disk_low": ("存储空间不足", "disk low"),
    "alarm.under_voltage": ("电压不足", "under-voltage"),
    "alarm.throttled": ("降频", "throttled"),
    "alarm.clock_unsynced": ("时钟未同步", "clock unsynced"),
    "alarm.outbox_dropping": ("队列丢弃事件", "outbox dropping"),
    "alarm.offline_armed": ("布防时离线", "offline while armed"),
    "alarm.tamper": ("布防时遮挡/破坏", "tamper while armed"),
    "alarm.broker_disconnect": ("MQTT 服务器断连，设备集体离线", "broker-wide disconnect"),
    "alarm.subject.broker": ("MQTT 服务器（全县）", "MQTT broker (county-wide)"),
    "grp.members_of": ("{g} 的成员", "Members of {g}"),
    "fw.title": ("转发到县综治平台", "Forwarding to the county platform"),
    "fw.dead": ("死信（需人工处理）", "Dead letters (need an operator)"),
    "fw.retry": ("重新发送", "Retry"),
    "fw.retry_all": ("全部重新发送", "Retry all"),
    "fw.retried": ("已重新排队 {n} 条", "{n} item(s) queued again"),
    "fw.no_sinks": ("未配置转发通道", "No forwarding sinks configured"),
    "users.add": ("添加用户", "Add user"),
    "users.added": ("用户已保存", "User saved"),
    "users.disable": ("停用", "Disable"),
    "users.enable": ("启用", "Enable"),
    "users.audit": ("操作记录", "Audit log"),
    "role.viewer": ("查看", "viewer"),
    "role.operator": ("操作员", "operator"),
    "role.admin": ("管理员", "admin"),
    "err.forbidden": ("权限不足", "Not allowed for your role"),
    "err.csrf": ("请求已失效，请刷新页面后重试", "This form has expired; reload the page and try again"),
    "err.not_found": ("未找到", "Not found"),
    "none": ("无", "none"),
    "ago.s": ("{n} 秒前", "{n} s ago"),
    "ago.m": ("{n} 分钟前", "{n} min ago"),
    "ago.h": ("{n} 小时前", "{n} h ago"),
    "ago.d": ("{n} 天前", "{n} d ago"),
    "never": ("从未", "never"),
}


# Rollouts of agent releases (issue 17, hub/console/rollouts.py).
STRINGS.update(
    {
        "ro.title": ("软件升级批次", "Agent rollouts"),
        "ro.one": ("升级 #{id}", "Rollout #{id}"),
        "ro.version": ("版本", "Release"),
        "ro.committed": ("已完成", "Committed"),
        "ro.failed": ("失败", "Failed"),
        "ro.created": ("创建", "Created"),
        "ro.reason": ("原因", "Reason"),
        "ro.cohorts": ("分批", "Cohorts"),
        "ro.cohort": ("批次", "Cohort"),
        "ro.started": ("开始于", "Started"),
        "ro.devices": ("设备", "Devices"),
        "ro.others": ("进行中", "In progress"),
        "ro.versions": ("运行版本", "Versions running"),
        "ro.villages": ("按村", "By village"),
        "ro.failures": ("失败设备", "Failures"),
        "ro.audit": ("操作记录", "Audit log"),
        "ro.actor": ("操作人", "Who"),
        "ro.action": ("操作", "Action"),
        "ro.rule": (
            "上一批完成 ≥ {ok:g}% 且失败 ≤ {bad:g}% 时开始下一批",
            "Next cohort at >= {ok:g}% committed and <= {bad:g}% failed",
        ),
        "ro.window": ("维护时段 {w}（县时间）", "window {w} county time"),
        "ro.do_pause": ("暂停", "Pause"),
        "ro.do_resume": ("继续", "Resume"),
        "ro.do_abort": ("终止", "Abort"),
        "ro.done_pause": ("已暂停", "Paused"),
        "ro.done_resume": ("已继续", "Resumed"),
        "ro.done_abort": ("已终止", "Aborted"),
        "ro.st.active": ("进行中", "active"),
        "ro.st.paused": ("已暂停", "paused"),
        "ro.st.halted": ("已自动停止", "halted"),
        "ro.st.aborted": ("已终止", "aborted"),
        "ro.st.done": ("已完成", "done"),
        "ro.ds.waiting": ("待开始", "waiting"),
        "ro.ds.queued": ("待发送", "queued"),
        "ro.ds.sent": ("已下发", "sent"),
        "ro.ds.working": ("升级中", "updating"),
        "ro.ds.skipped": ("跳过", "skipped"),
    }
)


# Event clips (issue 18, hub/console/clips.py).
STRINGS.update(
    {
        "clip.title": ("录像片段", "Video clip"),
        "clip.timeline": ("检测时间轴（点击跳转）", "Detections (click to seek)"),
        "clip.no_detections": ("片段内无检测记录", "No detections in this clip"),
        "clip.mark": ("{t} 秒 · 置信度 {score}%", "{t} s · score {score}%"),
        "clip.size": ("{mb} MB · {s} 秒", "{mb} MB · {s} s"),
        "clip.fetch": ("调取录像", "Fetch clip"),
        "clip.fetch_again": ("重新调取", "Fetch again"),
        "clip.st.none": ("录像不在中心（可能仍在设备上）", "Not at the hub (it may still be on the device)"),
        "clip.st.requested": ("已请求，等待设备开始上传", "Requested; waiting for the device to start"),
        "clip.st.uploading": ("上传中", "Uploading"),
        "clip.st.stored": ("已到达，正在加载", "Arrived; loading"),
        "clip.st.refused": ("设备无法提供：{err}", "The device cannot send it: {err}"),
        "clip.requested_ok": ("已向设备请求录像", "Clip requested from the device"),
        "clip.failed": ("请求未发送：{err}", "Request not sent: {err}"),
        "clip.unsupported": ("浏览器无法播放此视频", "This browser cannot play the video"),
    }
)


# Each room's strings live beside its own: the zones editor (issue 20) in i18n_zones.
STRINGS.update(ZONE_STRINGS)
STRINGS.update(ESCALATION_STRINGS)  # escalation and contacts (issue 21)
STRINGS.update(BULK_STRINGS)  # bulk operations, the audit log viewer, the case export (issue 21)
STRINGS.update(ALARM_STRINGS)  # recovery notices, flapping, maintenance windows, snooze (issue 21)


class Translator:
    def __init__(self, lang: str) -> None:
        self.lang = lang if lang in LANGS else "zh"
        self._i = LANGS.index(self.lang)

    def __call__(self, key: str, **kw: object) -> str:
        pair = STRINGS.get(key)
        text = key if pair is None else pair[self._i]
        return text.format(**kw) if kw else text

    def problem(self, kind: str) -> str:
        """An alarm kind or a health problem tag, translated when it is a known one."""
        if kind == "offline":
            return self("st.offline")
        return self("alarm." + kind) if "alarm." + kind in STRINGS else kind

    def ago(self, ms: int | None, now_ms: int) -> str:
        if ms is None:
            return self("never")
        s = max(0, (now_ms - ms) // 1000)
        if s < 60:
            return self("ago.s", n=s)
        if s < 3600:
            return self("ago.m", n=s // 60)
        if s < 86400:
            return self("ago.h", n=s // 3600)
        return self("ago.d", n=s // 86400)


def fmt_time(ms: int | None, with_date: bool = True) -> str:
    if ms is None:
        return "—"
    dt = datetime.fromtimestamp(ms / 1000, TZ)
    return dt.strftime("%m-%d %H:%M:%S" if with_date else "%H:%M:%S")


def fmt_duration(ms: int | None) -> str:
    if ms is None:
        return "—"
    s = ms / 1000
    if s < 60:
        return f"{s:.0f} s" if s >= 10 else f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60)} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60)} min"


def local_midnight_ms(now_ms: int) -> int:
    dt = datetime.fromtimestamp(now_ms / 1000, TZ).replace(hour=0, minute=0, second=0, microsecond=0)
    return int(dt.timestamp() * 1000)


def parse_local(value: str | None) -> int | None:
    """'YYYY-MM-DD' or 'YYYY-MM-DDTHH:MM' in Asia/Shanghai → epoch ms; anything else → None."""
    if not value:
        return None
    for fmt in ("%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            return int(datetime.strptime(value[:16], fmt).replace(tzinfo=TZ).timestamp() * 1000)
        except ValueError:
            continue
    return None
