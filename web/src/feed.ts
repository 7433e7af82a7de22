// The station feed (`/api/feed`, cookie auth): a WebSocket that reconnects with backoff.
// On every (re)connect the gateway first sends a `snapshot` of the open alerts, so a page
// that was disconnected catches up on everything it missed.

export type FeedStatus =
  | { kind: "connecting" }
  | { kind: "live" }
  | { kind: "down"; attempt: number; retryInMs: number };

export interface FeedHandlers {
  message(msg: unknown): void;
  status(status: FeedStatus): void;
  /** After a reconnect (not the first connect): refetch what the snapshot does not carry. */
  reconnected(): void;
  /** Called before each retry; resolve false to stop (the session ended). */
  stillSignedIn(): Promise<boolean>;
}

const FIRST_RETRY_MS = 500;
const MAX_RETRY_MS = 10_000;

export class Feed {
  private socket: WebSocket | null = null;
  private attempt = 0;
  private timer: number | null = null;
  private everConnected = false;
  private stopped = false;

  constructor(private readonly handlers: FeedHandlers) {}

  start(): void {
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) window.clearTimeout(this.timer);
    this.timer = null;
    this.socket?.close();
    this.socket = null;
  }

  private connect(): void {
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/feed`;
    const socket = new WebSocket(url);
    this.socket = socket;
    if (!this.everConnected) this.handlers.status({ kind: "connecting" });
    socket.onopen = () => {
      const wasReconnect = this.everConnected;
      this.attempt = 0;
      this.everConnected = true;
      this.handlers.status({ kind: "live" });
      if (wasReconnect) this.handlers.reconnected();
    };
    socket.onmessage = (ev: MessageEvent) => {
      if (typeof ev.data !== "string") return;
      try {
        this.handlers.message(JSON.parse(ev.data));
      } catch {
        // A message that does not parse is the server's bug; the next snapshot repairs state.
      }
    };
    socket.onclose = () => {
      if (this.socket !== socket || this.stopped) return;
      this.socket = null;
      this.scheduleRetry();
    };
  }

  private scheduleRetry(): void {
    this.attempt += 1;
    const base = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** (this.attempt - 1));
    // Jitter, so that every console of a station does not hammer a restarting gateway at once.
    const delay = Math.round(base * (0.75 + Math.random() * 0.5));
    this.handlers.status({ kind: "down", attempt: this.attempt, retryInMs: delay });
    this.timer = window.setTimeout(async () => {
      this.timer = null;
      if (this.stopped) return;
      // A refused WebSocket looks the same whether the server is down or the session ended.
      if (this.attempt > 1 && !(await this.handlers.stillSignedIn())) return;
      if (!this.stopped) this.connect();
    }, delay);
  }
}
