// The words the console and the volunteer app say alike, in Simplified Chinese and English:
// signing in (the form is shared, ./signin.ts), the language switch, and the names of alert
// kinds and of what became of a recipient, which must read the same on a phone as at the
// station. Each page spreads these into its own tables (./i18n.ts, ./app/i18n.ts) and keeps
// everything else, including the words it deliberately says differently, to itself.

export const zhWords = {
  name: "账户",
  password: "密码",
  signIn: "登录",
  signingIn: "正在登录…",
  wrongCredentials: "账户或密码错误。",
  limited: (s: number) => `登录尝试过多，请在 ${s} 秒后重试。`,
  signOut: "退出",
  langSwitch: "English",
  langSwitchLabel: "Switch to English",
  failed: "操作失败：",
  enough: "人手已够",
  enoughTitle: "赶来的人数已达到此类警情所需，其他人可不必前往",
  kinds: {
    help: "求助",
    medical: "急救",
    fire: "火警",
    intrusion: "入室警报",
    cancel: "取消",
  } as Record<string, string>,
  recipientStates: {
    notified: "已通知",
    delivered: "已送达",
    seen: "已查看",
    coming: "正在赶来",
    declined: "无法前往",
    on_scene: "已到场",
  } as Record<string, string>,
};

export type Words = typeof zhWords;

export const enWords: Words = {
  name: "Account",
  password: "Password",
  signIn: "Sign in",
  signingIn: "Signing in…",
  wrongCredentials: "Wrong account name or password.",
  limited: (s) => `Too many sign-in attempts: try again in ${s} s.`,
  signOut: "Sign out",
  langSwitch: "中文",
  langSwitchLabel: "切换到中文",
  failed: "Failed: ",
  enough: "enough help",
  enoughTitle: "As many are coming as this kind of alert needs: the others need not come",
  kinds: {
    help: "Help",
    medical: "Medical",
    fire: "Fire",
    intrusion: "Intrusion",
    cancel: "Cancel",
  },
  recipientStates: {
    notified: "notified",
    delivered: "delivered",
    seen: "seen",
    coming: "coming",
    declined: "can't go",
    on_scene: "on scene",
  },
};
