// The alert panel: the household (address, notes for responders, contacts), its cluster and
// leader, the first-response times, every recipient's state, the timeline, and the actions.
// The information part is redrawn on every change; the action forms are built once per
// alert so that a note being typed survives live updates.

import type { AlertDetail, AlertSummary, Category, Volunteer } from "./api";
import { ApiError, CATEGORIES, isOpen, needsAcknowledgement } from "./api";
import { h } from "./dom";
import { dateTime, elapsed } from "./format";
import { label, t } from "./i18n";
import { responseTimes } from "./queue";

export interface DetailActions {
  close(): void;
  acknowledge(id: number): Promise<void>;
  dispatch(id: number, volunteer: string, note: string): Promise<void>;
  note(id: number, text: string): Promise<void>;
  resolve(id: number, category: Category, note: string): Promise<void>;
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

/** "device:d-…-03" → "户机 和平里东街3号"; "operator:station" → "站务 station". */
function actorName(actor: string, recipients: AlertDetail["recipients"], own: AlertDetail): string {
  const [kind, who] = actor.includes(":") ? [actor.slice(0, actor.indexOf(":")), actor.slice(actor.indexOf(":") + 1)] : [actor, ""];
  let name = who;
  if (kind === "device") {
    name = who === own.device ? own.label : (recipients.find((r) => r.who === who)?.label ?? who);
  } else if (kind === "volunteer") {
    name = recipients.find((r) => r.kind === "volunteer" && r.who === who)?.label || who;
  }
  return `${label(t.actors, kind)}${name ? ` ${name}` : ""}`;
}

function info(d: AlertDetail): HTMLElement {
  const closed = !isOpen(d.state);
  return h(
    "div",
    { class: "detail-info" },
    h(
      "div",
      { class: "detail-status" },
      h("span", { class: `state state-${d.state}` }, label(t.states, d.state)),
      d.critical ? h("span", { class: "badge critical" }, t.critical) : null,
      h("span", { class: "badge ring" }, t.ring(d.ring)),
      closed
        ? null
        : h("span", { class: "since big", "data-since": d.raised_at_ms }, elapsed(Date.now() - d.raised_at_ms)),
      d.state === "resolved" && d.category
        ? h("span", { class: "resolved-as" }, t.closedAs(label(t.categories, d.category)))
        : null,
      d.state === "cancelled" ? h("span", { class: "resolved-as" }, t.cancelledByPresser) : null,
    ),
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
      ),
    ),
    h("section", {}, h("h3", {}, t.firstResponse), responseTimes(d, "response-times")),
    h(
      "section",
      { class: "recipients" },
      h("h3", {}, t.recipients, ` (${d.recipients.length})`),
      h(
        "table",
        {},
        h(
          "tbody",
          {},
          [...d.recipients]
            .sort((x, y) => stateRank(y.state) - stateRank(x.state) || x.ring - y.ring)
            .map((r) =>
              h(
                "tr",
                { class: `recipient r-${r.state}`, "data-recipient": r.who },
                h("td", {}, label(t.recipientKinds, r.kind)),
                h("td", { class: "who" }, r.label || r.who),
                h("td", {}, t.ring(r.ring)),
                h("td", { class: `rstate rstate-${r.state}` }, label(t.recipientStates, r.state)),
                h("td", { class: "dist" }, r.distance_m === null ? "" : t.distance(r.distance_m)),
                h(
                  "td",
                  { class: `push push-${(r.push ?? "").split(":")[0]}`, title: r.push ?? "" },
                  r.push ? label(t.pushOutcomes, r.push.split(":")[0] ?? r.push) : "",
                ),
              ),
            ),
        ),
      ),
    ),
    h(
      "section",
      { class: "timeline" },
      h("h3", {}, t.timeline),
      h(
        "ol",
        {},
        d.timeline.map((e) =>
          h(
            "li",
            {},
            h("time", {}, dateTime(e.at_ms)),
            " ",
            h("span", { class: "actor", title: e.actor }, actorName(e.actor, d.recipients, d)),
            " ",
            h("span", { class: "action", "data-action": e.action }, label(t.events, e.action)),
            e.detail ? h("span", { class: "event-detail" }, ` — ${e.detail}`) : null,
          ),
        ),
      ),
    ),
  );
}

function stateRank(s: string): number {
  return ["notified", "delivered", "seen", "declined", "coming", "on_scene"].indexOf(s);
}

/** The forms; `refresh` updates what is enabled without touching what was typed. */
function actionForms(
  id: number,
  actions: DetailActions,
): { el: HTMLElement; refresh(d: AlertSummary, volunteers: Volunteer[]): void } {
  const out = h("p", { class: "action-error", role: "alert" });
  const ack = h("button", { type: "button", class: "primary ack-button" }, t.acknowledge);
  ack.addEventListener("click", () => void run(ack, out, () => actions.acknowledge(id)));

  const volunteerSelect = h("select", { "aria-label": t.chooseVolunteer, class: "volunteer-select" });
  const dispatchBtn = h("button", { type: "button", class: "dispatch-button" }, t.dispatch);
  dispatchBtn.addEventListener("click", () => {
    if (!volunteerSelect.value) return;
    void run(dispatchBtn, out, () => actions.dispatch(id, volunteerSelect.value, ""));
  });

  const noteText = h("textarea", { rows: 2, placeholder: t.notePlaceholder, "aria-label": t.addNote, class: "note-text" });
  const noteBtn = h("button", { type: "button", class: "note-button" }, t.addNote);
  noteBtn.addEventListener("click", () => {
    const text = noteText.value.trim();
    if (!text) return;
    void run(noteBtn, out, async () => {
      await actions.note(id, text);
      noteText.value = "";
    });
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

  const dispatchRow = h("div", { class: "action-row" }, volunteerSelect, dispatchBtn);
  const el = h(
    "section",
    { class: "actions" },
    h("h3", {}, t.actions),
    h("div", { class: "action-row" }, ack),
    dispatchRow,
    h("div", { class: "action-row" }, noteText, noteBtn),
    h("div", { class: "action-row" }, categorySelect, resolveNote, resolveBtn),
    out,
  );
  let volunteerKey = "";
  return {
    el,
    refresh(a, volunteers) {
      const open = isOpen(a.state);
      ack.disabled = !needsAcknowledgement(a);
      ack.hidden = !open;
      dispatchRow.hidden = !open;
      resolveBtn.disabled = !open;
      categorySelect.disabled = !open;
      resolveNote.disabled = !open;
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
  private infoBox = h("div", { class: "detail-body" });

  constructor(
    private readonly el: HTMLElement,
    private readonly actions: DetailActions,
  ) {}

  /** Draws `summary` (always current) with `detail` (may lag a moment behind). */
  show(summary: AlertSummary, detail: AlertDetail | undefined, volunteers: Volunteer[]): void {
    if (this.formsFor !== summary.id) {
      this.forms = actionForms(summary.id, this.actions);
      this.formsFor = summary.id;
      this.el.replaceChildren(
        h(
          "header",
          { class: "detail-head" },
          h("h2", { class: "detail-title" }),
          h("button", { type: "button", class: "close", "aria-label": t.detailClose, onclick: () => this.actions.close() }, "×"),
        ),
        this.infoBox,
        this.forms.el,
      );
    }
    this.el.hidden = false;
    this.el.dataset.alertId = String(summary.id);
    this.el.dataset.state = summary.state;
    const title = this.el.querySelector(".detail-title");
    if (title) title.textContent = `${label(t.kinds, summary.kind)} · ${summary.label}`;
    const merged = detail ? { ...detail, ...summary } : undefined;
    this.infoBox.replaceChildren(merged ? info(merged) : h("p", {}, t.loading));
    this.forms?.refresh(summary, volunteers);
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
