// Every word the volunteer app shows, Simplified Chinese first, English second. The choice is
// kept in localStorage (shared with the console: one language per browser) and copied into
// the Cache Storage entry the service worker reads, so notifications speak it too. The words
// the console says alike are in ../words.ts.

import type { Lang } from "../lang";
import { languages } from "../lang";
import { enWords, zhWords } from "../words";

export { label } from "../lang";

/** The answer buttons say both languages, whichever is in use. */
const answerButtons = {
  coming: "我来了",
  comingSub: "I'm coming",
  decline: "去不了",
  declineSub: "Can't go",
  onScene: "已到场",
  onSceneSub: "On scene",
};

const zh = {
  ...zhWords,
  appTitle: "十户联防 · 队员",
  brand: "十户联防",
  brandSub: "巡逻队员",
  signInTitle: "队员登录",
  signInHint: "请使用联防队员账户登录。",
  network: "无法连接到服务器，请检查网络。",
  offline: "无法连接到服务器。正在重试…显示的信息可能不是最新的。",
  operatorHere: "这是站务账户。请使用站务台。",
  openConsole: "打开站务台",
  signInAsVolunteer: "改用队员账户登录",
  tabDuty: "值守",
  tabPatrol: "巡逻签到",
  dutyTitle: "值守状态",
  onDuty: "在岗",
  offDuty: "未在岗",
  goOnDuty: "开始值守",
  goOffDuty: "结束值守",
  dutyHint: "在岗时，附近的求助会推送给您，您的位置会共享给派出所。",
  posSharing: "正在共享位置",
  posWaiting: "正在获取位置…",
  posDenied: "位置权限被拒绝：派出所看不到您的位置，附近的警情也无法按距离通知您。请在浏览器或系统设置中允许本应用使用位置，然后重新开始值守。",
  posUnavailable: "暂时无法获取位置（信号弱？），稍后会自动重试。",
  posUnsupported: "此浏览器不支持定位。",
  posNotShared: "未在岗，不共享位置。",
  posSent: (ago: string) => `已上报 · ${ago}`,
  posSendFailed: "位置上报失败，稍后重试。",
  notifTitle: "警情通知",
  notifOn: "已开启",
  notifOff: "未开启",
  notifBlocked: "已被阻止",
  notifUnsupported: "不支持",
  notifEnable: "开启通知",
  notifDisable: "关闭通知",
  notifWorking: "正在开启…",
  notifHintOff: "开启后，即使不打开本应用，也能收到附近的求助。",
  notifHintOn: "本设备会收到警情通知。",
  notifHintBlocked: "通知已被阻止。请在浏览器的网站设置中允许「通知」，然后再回来开启。",
  notifHintUnsupported: "此浏览器不支持推送通知。请使用 Android 上的 Chrome，或 iOS 16.4 以上的 Safari（需先添加到主屏幕）。",
  notifHintIos: "iPhone / iPad：请先点「分享」→「添加到主屏幕」，再从主屏幕打开本应用开启通知。",
  notifNoPushService: "无法连接推送服务，请检查网络后重试。",
  notifServerCount: (n: number) => `服务器上共 ${n} 台设备已订阅`,
  alertsTitle: "本区警情",
  alertsEmpty: "当前没有未结束的警情。",
  responders: (n: number) => `${n} 人赶来`,
  nobodyComing: "暂无人响应",
  away: (m: number) => (m < 1000 ? `${Math.round(m)} 米` : `${(m / 1000).toFixed(1)} 公里`),
  awayFromYou: (d: string) => `距您 ${d}`,
  back: "返回",
  navigate: "导航前往",
  navigateTitle: "用手机上的地图应用导航到求助住户",
  appleMaps: "苹果地图",
  amap: "高德地图",
  alertTitle: "警情",
  address: "地址",
  whatIsKnown: "注意事项",
  noNotes: "无",
  contacts: "联系人",
  cluster: "十户联防组",
  leader: "十户长",
  othersComing: "正在赶来的人",
  nobodyElse: "还没有其他人响应。",
  enoughNow: (n: number) => `人手已够：已有 ${n} 人赶去，您可不必前往。`,
  enoughAsk: (n: number) => `已有 ${n} 人赶去，人手已够。您仍要前往吗？`,
  stillGo: "仍要前往",
  stay: "不去了",
  yourAnswer: "您的状态",
  notAnswered: "未响应",
  ...answerButtons,
  alertClosed: (s: string) => `此警情已${s}，无需前往。`,
  notFound: "找不到此警情（可能不属于您的责任区）。",
  saved: "已提交",
  you: "您",
  household: "求助住户",
  mapNoPosition: "尚无您的位置",
  raisedAt: "发起于",
  patrolTitle: "巡逻签到",
  patrolHint: "到达巡逻点时签到，记录时间和位置。",
  checkinNote: "备注（可选）",
  checkinNotePlaceholder: "例如：东门 一切正常",
  checkinButton: "签到",
  checkingIn: "正在签到…",
  checkinDone: (time: string) => `已签到 · ${time}`,
  checkinNeedsPosition: "签到需要位置：请允许本应用使用位置。",
  recentCheckins: "最近签到",
  noCheckins: "还没有签到记录。",
  states: {
    raised: "新警情",
    notified: "已通知",
    acknowledged: "已有人响应",
    on_scene: "已有人到场",
    resolved: "结案",
    cancelled: "取消",
  } as Record<string, string>,
  recipientKinds: {
    unit: "邻居",
    volunteer: "联防队员",
    station: "派出所",
  } as Record<string, string>,
};

type Strings = typeof zh;

const en: Strings = {
  ...enWords,
  appTitle: "tenwatch · Volunteer",
  brand: "tenwatch",
  brandSub: "patrol volunteer",
  signInTitle: "Volunteer sign-in",
  signInHint: "Sign in with your patrol volunteer account.",
  network: "Cannot reach the server: check the network.",
  offline: "Cannot reach the server. Retrying… what you see may be out of date.",
  operatorHere: "This is a station account. Please use the station console.",
  openConsole: "Open the station console",
  signInAsVolunteer: "Sign in as a volunteer instead",
  tabDuty: "Duty",
  tabPatrol: "Check-in",
  dutyTitle: "Duty",
  onDuty: "On duty",
  offDuty: "Off duty",
  goOnDuty: "Go on duty",
  goOffDuty: "Go off duty",
  dutyHint: "On duty, nearby alerts are pushed to you and the station sees where you are.",
  posSharing: "Sharing your position",
  posWaiting: "Finding your position…",
  posDenied: "Location permission denied: the station cannot see you and nearby alerts cannot find you by distance. Allow location for this app in the browser or system settings, then go on duty again.",
  posUnavailable: "Position unavailable for now (weak signal?); retrying.",
  posUnsupported: "This browser cannot share a position.",
  posNotShared: "Off duty: your position is not shared.",
  posSent: (ago) => `sent · ${ago}`,
  posSendFailed: "Could not send your position; retrying.",
  notifTitle: "Alert notifications",
  notifOn: "On",
  notifOff: "Off",
  notifBlocked: "Blocked",
  notifUnsupported: "Not supported",
  notifEnable: "Enable notifications",
  notifDisable: "Turn off notifications",
  notifWorking: "Enabling…",
  notifHintOff: "Get nearby alerts even when the app is closed.",
  notifHintOn: "This device receives alert notifications.",
  notifHintBlocked: "Notifications are blocked. Allow notifications for this site in the browser's settings, then come back and enable them.",
  notifHintUnsupported: "This browser has no push notifications. Use Chrome on Android, or Safari on iOS 16.4+ (added to the Home Screen).",
  notifHintIos: "iPhone / iPad: tap Share → Add to Home Screen first, then open the app from the Home Screen to enable notifications.",
  notifNoPushService: "Cannot reach the push service: check the network and try again.",
  notifServerCount: (n) => `${n} device(s) subscribed on the server`,
  alertsTitle: "Alerts in your area",
  alertsEmpty: "No open alerts.",
  responders: (n) => `${n} coming`,
  nobodyComing: "nobody coming yet",
  away: (m) => (m < 1000 ? `${Math.round(m)} m` : `${(m / 1000).toFixed(1)} km`),
  awayFromYou: (d) => `${d} from you`,
  back: "Back",
  navigate: "Navigate",
  navigateTitle: "Navigate to the household with the phone's maps app",
  appleMaps: "Apple Maps",
  amap: "Amap",
  alertTitle: "Alert",
  address: "Address",
  whatIsKnown: "What is known",
  noNotes: "nothing noted",
  contacts: "Contacts",
  cluster: "Cluster",
  leader: "Cluster leader",
  othersComing: "Who is coming",
  nobodyElse: "Nobody else has answered yet.",
  enoughNow: (n) => `Enough help: ${n} on their way. You need not go.`,
  enoughAsk: (n) => `${n} on their way already: enough help. Go anyway?`,
  stillGo: "Go anyway",
  stay: "Stay",
  yourAnswer: "Your answer",
  notAnswered: "not answered",
  ...answerButtons,
  alertClosed: (s) => `This alert is ${s}: no need to go.`,
  notFound: "No such alert (it may not be in your area).",
  saved: "Sent",
  you: "you",
  household: "household",
  mapNoPosition: "your position is not known yet",
  raisedAt: "raised at",
  patrolTitle: "Patrol check-in",
  patrolHint: "Check in at each patrol point: the time and your position are recorded.",
  checkinNote: "Note (optional)",
  checkinNotePlaceholder: "e.g. east gate, all quiet",
  checkinButton: "Check in",
  checkingIn: "Checking in…",
  checkinDone: (time) => `Checked in · ${time}`,
  checkinNeedsPosition: "A check-in needs your position: allow location for this app.",
  recentCheckins: "Recent check-ins",
  noCheckins: "No check-ins yet.",
  states: {
    raised: "new",
    notified: "notified",
    acknowledged: "someone is coming",
    on_scene: "someone on scene",
    resolved: "resolved",
    cancelled: "cancelled",
  },
  recipientKinds: {
    unit: "neighbour",
    volunteer: "volunteer",
    station: "station",
  },
};

/** Where the service worker looks for the language (see public/app/sw.js). */
const PREFS_CACHE = "tenwatch-prefs";
const PREFS_URL = "/app/__prefs.json";

const langs = languages({ zh, en });
export let t: Strings = langs.table();
export const currentLang = langs.current;

/** Tells the service worker the language (Cache Storage: the one store both can reach). */
export async function sharePrefs(): Promise<void> {
  try {
    const cache = await caches.open(PREFS_CACHE);
    await cache.put(
      PREFS_URL,
      new Response(JSON.stringify({ lang: currentLang() }), { headers: { "content-type": "application/json" } }),
    );
  } catch {
    // No Cache Storage (insecure origin, private mode): notifications stay in Chinese.
  }
}

export function setLang(next: Lang): void {
  t = langs.set(next);
  void sharePrefs();
}

/** "14:03" or "11-23 14:03" (another day), in the phone's own time zone. */
export function timeOf(ms: number): string {
  const d = new Date(ms);
  const now = new Date();
  const hm = d.toLocaleTimeString(currentLang() === "en" ? "en-GB" : "zh-CN", {
    hour: "2-digit",
    minute: "2-digit",
    hourCycle: "h23",
  });
  if (d.toDateString() === now.toDateString()) return hm;
  return `${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")} ${hm}`;
}

/** "just now", "3 min ago". */
export function ago(ms: number, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (currentLang() === "en") return s < 60 ? `${s} s ago` : `${Math.floor(s / 60)} min ago`;
  return s < 60 ? `${s} 秒前` : `${Math.floor(s / 60)} 分钟前`;
}
