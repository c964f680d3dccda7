// Server-sent events over fetch(): EventSource cannot send the Authorization header, and reading the
// stream ourselves lets us decide how to reconnect after a drop.
import { ApiError, send } from "./api";

export interface Handlers {
  event(name: string, data: unknown): void;
  state(text: string): void;
}

export class EventStream {
  private controller = new AbortController();
  private stopped = false;
  private attempt = 0;

  constructor(private readonly path: string, private readonly on: Handlers) {
    void this.run();
  }

  stop(): void {
    this.stopped = true;
    this.controller.abort();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      let final = false;
      try {
        final = await this.read();
      } catch (error) {
        if (this.stopped) return;
        if (error instanceof ApiError && error.status >= 400 && error.status < 500) {
          this.on.event("error", error);
          return;
        }
      }
      if (final || this.stopped) return;
      const wait = Math.min(30, 2 ** this.attempt++);
      this.on.state(`Live updates lost. Reconnecting in ${wait} s…`);
      await new Promise((resolve) => setTimeout(resolve, wait * 1000));
    }
  }

  /** Reads one connection; true when the server sent its final event. */
  private async read(): Promise<boolean> {
    const response = await send(this.path, { signal: this.controller.signal, headers: { Accept: "text/event-stream" } });
    if (!response.body) return false;
    this.attempt = 0;
    this.on.state("Live");
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return false;
      buffer += value.replace(/\r\n?/g, "\n");
      let end: number;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const name = this.dispatch(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        if (name === "done" || name === "deleted") return true;
      }
    }
  }

  private dispatch(block: string): string | null {
    let name = "message";
    const data: string[] = [];
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) continue; // keepalive comment
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") name = value;
      else if (field === "data") data.push(value);
    }
    if (!data.length) return null;
    this.on.event(name, JSON.parse(data.join("\n")));
    return name;
  }
}
