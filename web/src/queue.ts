// The alert queue beside the map: open alerts, most critical and newest first, each with its
// elapsed time, ring, who is coming and the first-response times; then the ones that just
// closed. Each entry is a button that opens the alert.

import type { AlertDetail, AlertSummary, Problem } from "./api";
import { isOpen, needsAcknowledgement } from "./api";
import { h } from "./dom";
import { isEnough } from "./enough";
import { after, clock, elapsed } from "./format";
import { label, t } from "./i18n";

/** How long an alert may stay open before it is shown stale (the gateway's --stale-after). */
let staleAfterMs = Number.POSITIVE_INFINITY;

/** Set from the alert list: alerts that arrive later on the feed are judged by it too. */
export function setStaleAfter(ms: number): void {
  if (Number.isFinite(ms) && ms > 0) staleAfterMs = ms;
}

/** Open longer than --stale-after: no unit sounds it again; the station should close it. */
export function isStale(a: AlertSummary, now = Date.now()): boolean {
  return a.state !== "resolved" && a.state !== "cancelled" && now - a.raised_at_ms > staleAfterMs;
}

/** Critical first, then those nobody has taken, then newest. */
export function queueOrder(a: AlertSummary, b: AlertSummary): number {
  return (
    Number(b.critical) - Number(a.critical) ||
    Number(needsAcknowledgement(b)) - Number(needsAcknowledgement(a)) ||
    b.raised_at_ms - a.raised_at_ms ||
    b.id - a.id
  );
}

/** How many of those coming a card names. */
const NAMED = 3;

/** Names of the recipients coming or on scene, from the alert's detail if loaded. */
function comingNames(detail: AlertDetail | undefined): string[] {
  if (!detail) return [];
  return detail.recipients
    .filter((r) => r.state === "coming" || r.state === "on_scene")
    .map((r) => `${r.label || r.who}${r.state === "on_scene" ? ` (${t.onScene})` : ""}`);
}

function entry(
  a: AlertSummary,
  detail: AlertDetail | undefined,
  selected: boolean,
  open: (id: number) => void,
): HTMLElement {
  const unacked = needsAcknowledgement(a);
  // The nearest few by name (the detail lists recipients by ring and distance), then a count.
  const all = comingNames(detail);
  const names = all.length > NAMED ? [...all.slice(0, NAMED), t.more(all.length - NAMED)] : all;
  const isClosed = !isOpen(a.state);
  const enough = !isClosed && isEnough(a.kind, a.responders);
  return h(
    "li",
    {
      class: `alert-item${unacked ? " unacked" : ""}${a.critical ? " critical" : ""}${selected ? " selected" : ""}`,
      "data-alert-id": a.id,
      "data-state": a.state,
    },
    h(
      "button",
      {
        type: "button",
        class: "alert-open",
        "aria-pressed": selected ? "true" : "false",
        onclick: () => open(a.id),
      },
      h(
        "div",
        { class: "row1" },
        h("span", { class: `kind kind-${a.kind}` }, label(t.kinds, a.kind)),
        h("span", { class: "label" }, a.label),
        isClosed
          ? h("span", { class: "since" }, clock(a.closed_at_ms ?? a.updated_at_ms))
          : h(
              "span",
              { class: "since", "data-since": a.raised_at_ms, title: t.elapsed },
              elapsed(Date.now() - a.raised_at_ms),
            ),
      ),
      h(
        "div",
        { class: "row2" },
        h("span", { class: `state state-${a.state}` }, label(t.states, a.state)),
        a.critical ? h("span", { class: "badge critical" }, t.critical) : null,
        isStale(a) ? h("span", { class: "badge stale", title: t.staleTitle }, t.stale) : null,
        h("span", { class: "badge ring" }, t.ring(a.ring)),
        h("span", { class: "raised-at" }, clock(a.raised_at_ms)),
        a.category ? h("span", { class: "badge" }, label(t.categories, a.category)) : null,
      ),
      h(
        "div",
        { class: "row3 coming" },
        a.responders > 0 ? t.responders(a.responders) : t.nobodyComing,
        names.length > 0 ? `: ${names.join("、")}` : "",
        enough ? h("span", { class: "badge enough", title: t.enoughTitle }, t.enough) : null,
      ),
      responseTimes(a, "times"),
    ),
  );
}

/** How long after the press each first step came (or "—"): the queue's cards and the detail. */
export function responseTimes(a: AlertSummary, className: string): HTMLElement {
  return h(
    "dl",
    { class: className },
    h("dt", {}, t.ack),
    h("dd", {}, after(a.raised_at_ms, a.acknowledged_at_ms)),
    h("dt", {}, t.delivered),
    h("dd", {}, after(a.raised_at_ms, a.first_delivered_at_ms)),
    h("dt", {}, t.coming),
    h("dd", {}, after(a.raised_at_ms, a.first_coming_at_ms)),
    h("dt", {}, t.onScene),
    h("dd", {}, after(a.raised_at_ms, a.first_on_scene_at_ms)),
  );
}

/** What a problem is, in words: the gateway's reasons are codes or English. */
export function problemWhat(p: Problem): string {
  switch (p.kind) {
    case "coverage":
      return p.reachable !== null && p.households !== null ? t.coverageWhat(p.reachable, p.households) : "";
    case "offline":
      return t.offlineReason(p.reason);
    case "low_battery":
      // The level when it was opened: "15%".
      return t.batteryAt(p.reason);
    case "tamper":
      return t.tamperOpened;
    default:
      return p.reason;
  }
}

/** The "needs attention" list: dead, weak or tampered units and thin clusters, and whom to tell. */
function attention(problems: Problem[], openDevice: (id: string) => void): HTMLElement[] {
  const item = (p: Problem) => {
    const who = p.notify
      .filter((n) => n.role !== "station")
      .map((n) => `${n.role === "cluster_leader" ? t.roleLeader : t.roleHousehold} ${n.label} ${n.contacts}`.trim());
    const what = problemWhat(p);
    return h(
      "li",
      { class: `problem problem-${p.kind}`, "data-device": p.device ?? "" },
      h(
        "div",
        { class: "problem-head" },
        h("span", { class: `tag tag-${p.kind}` }, t.problemKind(p.kind)),
        h("strong", {}, p.label ?? p.cluster_name),
        p.opened_at_ms !== null ? h("span", { class: "elapsed", "data-since": p.opened_at_ms }, "") : null,
      ),
      h("div", { class: "problem-what" }, what, p.flapping ? ` · ${t.flapping(p.flaps)}` : ""),
      who.length > 0 ? h("div", { class: "problem-who" }, `${t.tellWho}: ${who.join("; ")}`) : null,
      p.device !== null
        ? h("button", { type: "button", class: "link device-link", onclick: () => p.device !== null && openDevice(p.device) }, t.deviceOpen)
        : null,
    );
  };
  return [
    h("h3", { class: "attention-title" }, t.attentionTitle, h("span", { class: "count" }, problems.length)),
    problems.length === 0
      ? h("p", { class: "attention-empty" }, t.attentionEmpty)
      : h("ol", { class: "problem-list" }, problems.map(item)),
  ];
}

export function renderQueue(
  el: HTMLElement,
  open: AlertSummary[],
  closed: AlertSummary[],
  details: Map<number, AlertDetail>,
  selected: number | null,
  select: (id: number) => void,
  problems: Problem[] = [],
  openDevice: (id: string) => void = () => {},
): void {
  const sorted = [...open].sort(queueOrder);
  const parts: (HTMLElement | null)[] = [
    h("h2", { class: "queue-title" }, t.queueTitle, h("span", { class: "count" }, sorted.length)),
    sorted.length === 0
      ? h("p", { class: "queue-empty" }, t.queueEmpty)
      : h(
          "ol",
          { class: "alert-list open" },
          sorted.map((a) => entry(a, details.get(a.id), a.id === selected, select)),
        ),
    closed.length > 0 ? h("h3", { class: "closed-title" }, t.recentlyClosed) : null,
    closed.length > 0
      ? h(
          "ol",
          { class: "alert-list closed" },
          closed.map((a) => entry(a, details.get(a.id), a.id === selected, select)),
        )
      : null,
    ...attention(problems, openDevice),
  ];
  el.replaceChildren(...parts.filter((p): p is HTMLElement => p !== null));
}

/** Moves every elapsed-time counter on the page forward; called once a second. */
export function tick(root: ParentNode): void {
  const now = Date.now();
  root.querySelectorAll<HTMLElement>("[data-since]").forEach((el) => {
    const since = Number(el.dataset.since);
    if (Number.isFinite(since)) el.textContent = elapsed(now - since);
  });
}
