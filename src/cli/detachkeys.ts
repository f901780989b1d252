// Detach keys (`--detach-keys`, default ctrl-p,ctrl-q): typed on an attached terminal they leave the
// container running and end the client, as with the docker CLI, which watches its own input for them.

/** Docker's key syntax: comma-separated `ctrl-<a-z @ [ \ ] ^ _>` or single characters. */
export function parseDetachKeys(spec: string): number[] {
  const keys: number[] = [];
  for (const part of spec.split(',')) {
    const ctrl = /^ctrl-(.)$/.exec(part);
    if (ctrl) {
      const ch = ctrl[1]!;
      const code = ch >= 'a' && ch <= 'z' ? ch.charCodeAt(0) - 96 : '@[\\]^_'.indexOf(ch) >= 0 ? ch.charCodeAt(0) - 64 : -1;
      if (code < 0) throw new Error(`Invalid detach keys (${spec}) provided`);
      keys.push(code);
    } else if (part.length === 1) {
      keys.push(part.charCodeAt(0));
    } else {
      throw new Error(`Invalid detach keys (${spec}) provided`);
    }
  }
  return keys;
}

/**
 * Watches input for the sequence. `feed` returns what may be passed on now (bytes of a partial match are
 * held back until the sequence breaks) and whether the sequence is complete (its bytes are never passed on).
 */
export class EscapeWatcher {
  private readonly keys: number[];
  private held = 0;

  constructor(keys: number[]) {
    this.keys = keys;
  }

  feed(chunk: Buffer): { pass: Buffer; detach: boolean } {
    const out: number[] = [];
    for (const b of chunk) {
      if (b === this.keys[this.held]) {
        this.held++;
        if (this.held === this.keys.length) return { pass: Buffer.from(out), detach: true };
        continue;
      }
      // the sequence broke: what was held goes out, and this byte may start a new match
      out.push(...this.keys.slice(0, this.held));
      this.held = 0;
      if (b === this.keys[0]) this.held = 1;
      else out.push(b);
    }
    return { pass: Buffer.from(out), detach: false };
  }
}
