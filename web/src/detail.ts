// The alert panel. At the top, visible on opening without scrolling: the state and the
// actions (acknowledge, the station on scene, dispatch, resolve). Below: the household
// (address, notes for responders, contacts), its cluster and leader, the first-response times,
// every recipient's state (the station's own row first), the timeline, and a note form.
// The information parts are redrawn on every change; the forms are built once per alert so
// that what is being typed survives live updates.

import type { Account, AlertDetail, AlertSummary, Category, Recipient, TimelineEvent, Volunteer } from "./api";
import { ApiError, CATEGORIES, capUrl, isOpen, needsAcknowledgement } from "./api";
import { h } from "./dom";
import { dateTime, elapsed } from "./format";
import { label, t } from "./i18n";
import { responseTimes } from "./queue";

export interface DetailActions {
  close(): void;
  acknowledge(id: number): Promise<void>;
  /** The station's own people are there. */
  onScene(id: number): Promise<void>;
  dispatch(id: number, volunteer: string, note: string): Promise<void>;
  note(id: number, text: string): Promise<void>;
  resolve(id: number, category: Category, note: string): Promise<void>;
  /** Makes the alert public (the CAP feed). */
  publish(id: number): Promise<void>;
  /** Opens the record of the presser's unit. */
  device(id: string): void;
}

function errorText(e: unknown): string {
  if (e instanceof ApiError) return e.status === 0 ? t.network : e.message;
  return String(e);
}

/** Runs an action with its button disabled, and shows a refusal beside it. */
async function run(button: HTMLButtonElement, out: HTMLElement, f: () => Promise<void>): Promise<void> {
  button.disabled = true;
  out.textContent = "";
  try {
    await f();
  } catch (e) {
    out.textContent = t.failed + errorText(e);
  } finally {
    button.disabled = false;
  }
}

/** The station's own recipient row: the zone's station, of a zone this account keeps. */
function isOwn(r: Recipient, me: Account): boolean {
  return r.kind === "station" && me.zones.includes(r.who);
}

/** "device:d-…-03" → "户机 和平里东街3号"; "operator:station" → "站务 和平里派出所 值班台". */
function actorName(actor: string, d: AlertDetail, me: Account): string {
  const colon = actor.indexOf(":");
  const [kind, who] = colon >= 0 ? [actor.slice(0, colon), actor.slice(colon + 1)] : [actor, ""];
  let name = who;
  if (kind === "device") {
    name = who === d.device ? d.label : (d.recipients.find((r) => r.who === who)?.label ?? who);
  } else if (kind === "volunteer") {
    name = volunteerName(who, d);
  } else if (kind === "operator" && who === me.name) {
    name = me.display_name || who;
  }
  return `${label(t.actors, kind)}${name ? ` ${name}` : ""}`;
}

function volunteerName(who: string, d: AlertDetail): string {
  return d.recipients.find((r) => r.kind === "volunteer" && r.who === who)?.label || who;
}

/**
 * The words of an event's detail. The gateway writes its own events' details in English
 * (rings, a late cancel, a resolution's category code, a dispatch's account name); they are
 * said here in the page's language. People's notes are shown as written.
 */
export function eventDetail(e: TimelineEvent, d: AlertDetail): string {
  const text = e.detail;
  let m: RegExpExecArray | null;
  switch (e.action) {
    case "satisfaction":
      return text === "satisfied" ? t.satisfied : text === "unsatisfied" ? t.unsatisfied : text;
    case "raised":
      // The press's kind.
      return Object.hasOwn(t.kinds, text) ? label(t.kinds, text) : text;
    case "resolved": {
      // "false_alarm 误报: note" (the code, its Chinese name, the note).
      m = /^(\w+) \S+?:\s?([\s\S]*)$/.exec(text);
      if (m && m[1] && (CATEGORIES as readonly string[]).includes(m[1])) {
        const category = label(t.categories, m[1]);
        return m[2] ? t.withNote(category, m[2]) : category;
      }
      return text;
    }
    case "dispatched": {
      // "patrol1 note": the volunteer's account name, then the note.
      const [who, ...rest] = text.split(" ");
      if (who && d.recipients.some((r) => r.kind === "volunteer" && r.who === who)) {
        return [volunteerName(who, d), ...rest].join(" ");
      }
      return text;
    }
    case "ring1":
      m = /^nobody coming after (\d+) s: (\d+) units in (\d+) nearby clusters and (\d+) volunteers within (\d+) m$/.exec(text);
      return m ? t.ring1Detail(Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5])) : text;
    case "ring2":
      m = /^nobody coming after (\d+) s: alert is critical; (\d+) more on-duty volunteers of the zone$/.exec(text);
      return m ? t.ring2Detail(Number(m[1]), Number(m[2])) : text;
    case "cancel_refused":
      m = /^cancel pressed (\d+) s after the alert, window is (\d+) s$/.exec(text);
      return m ? t.cancelLate(Number(m[1]), Number(m[2])) : text;
    default:
      return text;
  }
}

/** A unit's "it sounded" receipt: nine of them come with every press. */
function isReceipt(e: TimelineEvent): boolean {
  return e.action === "delivered" && e.actor.startsWith("device:");
}

/** What the station's own row says: on scene, acknowledged by it, or its recipient state. */
function ownState(r: Recipient, d: AlertDetail): { key: string; text: string } {
  if (r.state === "on_scene") return { key: "on_scene", text: label(t.recipientStates, "on_scene") };
  const byStation = (action: string) => d.timeline.some((e) => e.action === action && e.actor.startsWith("operator:"));
  if (byStation("acknowledged")) return { key: "acknowledged", text: t.stationAcknowledged };
  if (byStation("dispatched")) return { key: "dispatched", text: t.stationDispatched };
  return { key: r.state, text: label(t.recipientStates, r.state) };
}

function recipientRow(r: Recipient, d: AlertDetail, me: Account): HTMLElement {
  const own = isOwn(r, me);
  const state = own ? ownState(r, d) : { key: r.state, text: label(t.recipientStates, r.state) };
  return h(
    "tr",
    { class: `recipient r-${r.state}${own ? " own" : ""}`, "data-recipient": r.who, "data-state": state.key },
    h("td", {}, label(t.recipientKinds, r.kind)),
    h("td", { class: "who" }, r.label || r.who, own ? [" ", h("span", { class: "own-tag" }, t.you)] : null),
    h("td", {}, t.ring(r.ring)),
    h("td", { class: `rstate rstate-${state.key}` }, state.text),
    h("td", { class: "dist" }, r.distance_m === null ? "" : t.distance(r.distance_m)),
    h(
      "td",
      { class: `push push-${(r.push ?? "").split(":")[0]}`, title: r.push ?? "" },
      r.push ? label(t.pushOutcomes, r.push.split(":")[0] ?? r.push) : "",
    ),
  );
}

function stateRank(s: string): number {
  return ["notified", "delivered", "seen", "declined", "coming", "on_scene"].indexOf(s);
}

/** How the timeline is drawn: whether the folded receipts are open (kept across redraws). */
interface Fold {
  open: boolean;
}

function timelineItem(e: TimelineEvent, d: AlertDetail, me: Account): HTMLElement {
  const detail = eventDetail(e, d);
  const action = e.action === "delivered" && e.actor.startsWith("volunteer:") ? "delivered_phone" : e.action;
  return h(
    "li",
    {},
    h("time", {}, dateTime(e.at_ms)),
    " ",
    h("span", { class: "actor", title: e.actor }, actorName(e.actor, d, me)),
    " ",
    h("span", { class: "action", "data-action": e.action }, label(t.events, action)),
    detail ? h("span", { class: "event-detail" }, ` — ${detail}`) : null,
  );
}

/** The timeline, with the units' receipts folded into one line where the first came. */
function timeline(d: AlertDetail, me: Account, fold: Fold): HTMLElement {
  const receipts = d.timeline.filter(isReceipt);
  const items: HTMLElement[] = [];
  let folded = false;
  for (const e of d.timeline) {
    if (receipts.length < 2 || !isReceipt(e)) {
      items.push(timelineItem(e, d, me));
      continue;
    }
    if (folded) continue;
    folded = true;
    const details = h(
      "details",
      { class: "receipts", open: fold.open },
      h(
        "summary",
        {},
        h("time", {}, dateTime(e.at_ms)),
        " ",
        h("span", { class: "action", "data-action": "delivered" }, t.unitsSounded(receipts.length)),
      ),
      h("ol", {}, receipts.map((r) => timelineItem(r, d, me))),
    );
    details.addEventListener("toggle", () => (fold.open = details.open));
    items.push(h("li", { class: "fold" }, details));
  }
  return h("section", { class: "timeline" }, h("h3", {}, t.timeline), h("ol", {}, items));
}

/** The state line under the title: state, critical, ring, elapsed, how it ended. */
function status(d: AlertSummary): HTMLElement {
  const closed = !isOpen(d.state);
  return h(
    "div",
    { class: "detail-status" },
    h("span", { class: `state state-${d.state}` }, label(t.states, d.state)),
    d.critical ? h("span", { class: "badge critical" }, t.critical) : null,
    h("span", { class: "badge ring" }, t.ring(d.ring)),
    closed ? null : h("span", { class: "since big", "data-since": d.raised_at_ms }, elapsed(Date.now() - d.raised_at_ms)),
    d.state === "resolved" && d.category
      ? h("span", { class: "resolved-as" }, t.closedAs(label(t.categories, d.category)))
      : null,
    d.state === "cancelled" ? h("span", { class: "resolved-as" }, t.cancelledByPresser) : null,
    d.public_at_ms !== null && d.public_at_ms !== undefined
      ? h("a", { class: "badge public-badge", href: capUrl(d.id), target: "_blank", rel: "noopener" }, t.publicBadge)
      : null,
  );
}

function info(d: AlertDetail, me: Account, fold: Fold, openDevice: (id: string) => void): HTMLElement {
  const recipients = [...d.recipients].sort(
    (x, y) =>
      Number(isOwn(y, me)) - Number(isOwn(x, me)) || stateRank(y.state) - stateRank(x.state) || x.ring - y.ring,
  );
  return h(
    "div",
    { class: "detail-info" },
    h(
      "section",
      { class: "household" },
      h("h3", {}, t.household),
      h(
        "dl",
        { class: "facts" },
        h("dt", {}, t.address),
        h("dd", { class: "address" }, d.address),
        h("dt", {}, t.notes),
        h("dd", { class: d.notes ? "notes has-notes" : "notes" }, d.notes || t.noNotes),
        h("dt", {}, t.contacts),
        h("dd", { class: "contacts" }, d.contacts || "—"),
        h("dt", {}, t.cluster),
        h("dd", {}, d.cluster_name),
        h("dt", {}, t.leader),
        h("dd", { class: "leader" }, d.leader ?? t.noLeader),
        h("dt", {}, t.deviceOpen),
        h(
          "dd",
          {},
          h("button", { type: "button", class: "link device-link", "data-device": d.device, onclick: () => openDevice(d.device) }, `${t.deviceOpen} · ${d.device}`),
        ),
      ),
    ),
    h("section", {}, h("h3", {}, t.firstResponse), responseTimes(d, "response-times")),
    d.state === "resolved"
      ? h(
          "section",
          { class: "satisfaction" },
          h("h3", {}, t.satisfactionTitle),
          d.satisfaction
            ? h(
                "p",
                { class: `satisfaction-answer ${d.satisfaction.satisfied ? "satisfied" : "unsatisfied"}` },
                d.satisfaction.satisfied ? t.satisfied : t.unsatisfied,
                " · ",
                h("time", {}, dateTime(d.satisfaction.answered_at_ms)),
              )
            : h("p", { class: "satisfaction-answer none" }, t.satisfactionNone),
        )
      : null,
    h(
      "section",
      { class: "recipients" },
      h("h3", {}, t.recipients, ` (${d.recipients.length})`),
      h("table", {}, h("tbody", {}, recipients.map((r) => recipientRow(r, d, me)))),
    ),
    timeline(d, me, fold),
  );
}

/** The forms; `refresh` updates what is enabled without touching what was typed. */
function actionForms(
  id: number,
  actions: DetailActions,
  me: Account,
): {
  top: HTMLElement;
  note: HTMLElement;
  refresh(a: AlertSummary, d: AlertDetail | undefined, volunteers: Volunteer[]): void;
} {
  const out = h("p", { class: "action-error", role: "alert" });
  const ack = h("button", { type: "button", class: "primary ack-button" }, t.acknowledge);
  ack.addEventListener("click", () => void run(ack, out, () => actions.acknowledge(id)));
  const onScene = h("button", { type: "button", class: "on-scene-button" }, t.stationOnScene);
  onScene.addEventListener("click", () => void run(onScene, out, () => actions.onScene(id)));

  const publish = h("button", { type: "button", class: "publish-button", title: t.publishHint }, t.publish);
  publish.addEventListener("click", () => void run(publish, out, () => actions.publish(id)));

  const volunteerSelect = h("select", { "aria-label": t.chooseVolunteer, class: "volunteer-select" });
  const dispatchBtn = h("button", { type: "button", class: "dispatch-button" }, t.dispatch);
  dispatchBtn.addEventListener("click", () => {
    if (!volunteerSelect.value) return;
    void run(dispatchBtn, out, () => actions.dispatch(id, volunteerSelect.value, ""));
  });

  const categorySelect = h(
    "select",
    { "aria-label": t.category, class: "category-select" },
    h("option", { value: "" }, t.chooseCategory),
    CATEGORIES.map((c) => h("option", { value: c }, label(t.categories, c))),
  );
  const resolveNote = h("input", { type: "text", placeholder: t.resolutionNote, "aria-label": t.resolutionNote, class: "resolve-note" });
  const resolveBtn = h("button", { type: "button", class: "resolve-button" }, t.resolve);
  resolveBtn.addEventListener("click", () => {
    const category = categorySelect.value as Category | "";
    if (!category) {
      out.textContent = t.chooseCategory;
      categorySelect.focus();
      return;
    }
    void run(resolveBtn, out, () => actions.resolve(id, category, resolveNote.value.trim()));
  });

  const noteOut = h("p", { class: "action-error", role: "alert" });
  const noteText = h("textarea", { rows: 2, placeholder: t.notePlaceholder, "aria-label": t.addNote, class: "note-text" });
  const noteBtn = h("button", { type: "button", class: "note-button" }, t.addNote);
  noteBtn.addEventListener("click", () => {
    const text = noteText.value.trim();
    if (!text) return;
    void run(noteBtn, noteOut, async () => {
      await actions.note(id, text);
      noteText.value = "";
    });
  });

  const top = h(
    "section",
    { class: "actions", "aria-label": t.actions },
    h("div", { class: "action-row first" }, ack, onScene, publish),
    h("div", { class: "action-row" }, volunteerSelect, dispatchBtn),
    h("div", { class: "action-row" }, categorySelect, resolveNote, resolveBtn),
    out,
  );
  const note = h(
    "section",
    { class: "note-form" },
    h("div", { class: "action-row" }, noteText, noteBtn),
    noteOut,
  );
  let volunteerKey = "";
  return {
    top,
    note,
    refresh(a, d, volunteers) {
      // A closed alert has nothing left to do but notes.
      top.hidden = !isOpen(a.state);
      ack.disabled = !needsAcknowledgement(a);
      onScene.disabled = d?.recipients.find((r) => isOwn(r, me))?.state === "on_scene";
      // Published once; the badge in the state line links to its CAP document.
      publish.disabled = a.public_at_ms !== null && a.public_at_ms !== undefined;
      const key = volunteers.map((v) => v.volunteer.name).join(",");
      if (key !== volunteerKey) {
        volunteerKey = key;
        const chosen = volunteerSelect.value;
        volunteerSelect.replaceChildren(
          h("option", { value: "" }, volunteers.length ? t.chooseVolunteer : t.dispatchNone),
          ...volunteers.map((v) =>
            h("option", { value: v.volunteer.name }, v.volunteer.display_name || v.volunteer.name),
          ),
        );
        volunteerSelect.value = chosen;
      }
      dispatchBtn.disabled = volunteers.length === 0;
    },
  };
}

/** The panel for one alert at a time. */
export class DetailPanel {
  private forms: ReturnType<typeof actionForms> | null = null;
  private formsFor: number | null = null;
  private statusBox = h("div", { class: "detail-state" });
  private infoBox = h("div", { class: "detail-body" });
  private fold: Fold = { open: false };

  constructor(
    private readonly el: HTMLElement,
    private readonly actions: DetailActions,
    private readonly me: Account,
  ) {}

  /** Draws `summary` (always current) with `detail` (may lag a moment behind). */
  show(summary: AlertSummary, detail: AlertDetail | undefined, volunteers: Volunteer[]): void {
    if (this.formsFor !== summary.id) {
      if (this.el.dataset.alertId !== String(summary.id)) this.fold = { open: false };
      this.forms = actionForms(summary.id, this.actions, this.me);
      this.formsFor = summary.id;
      this.el.replaceChildren(
        h(
          "header",
          { class: "detail-head" },
          h("h2", { class: "detail-title" }),
          h("button", { type: "button", class: "close", "aria-label": t.detailClose, onclick: () => this.actions.close() }, "×"),
        ),
        this.statusBox,
        this.forms.top,
        this.infoBox,
        this.forms.note,
      );
    }
    this.el.hidden = false;
    this.el.dataset.alertId = String(summary.id);
    this.el.dataset.state = summary.state;
    const title = this.el.querySelector(".detail-title");
    if (title) title.textContent = `${label(t.kinds, summary.kind)} · ${summary.label}`;
    this.statusBox.replaceChildren(status(summary));
    const merged = detail ? { ...detail, ...summary } : undefined;
    this.infoBox.replaceChildren(merged ? info(merged, this.me, this.fold, (id) => this.actions.device(id)) : h("p", {}, t.loading));
    this.forms?.refresh(summary, merged, volunteers);
  }

  hide(): void {
    this.el.hidden = true;
    this.el.replaceChildren();
    this.forms = null;
    this.formsFor = null;
    delete this.el.dataset.alertId;
  }

  /** The language changed: rebuild the forms with the new words. */
  reset(): void {
    this.formsFor = null;
  }
}
