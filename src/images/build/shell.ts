// Variable substitution in Dockerfile instructions, as buildkit's shell lexer (frontend/dockerfile/shell)
// does it for the classic builder: `$X`, `${X}`, `${X:-word}`, `${X-word}`, `${X:+word}`, `${X+word}`,
// `${X:?msg}`, `${X?msg}`, single quotes (literal), double quotes (`$` expands, the escape token only
// escapes `"`, `$` and itself), the escape token outside quotes takes the next character literally.
// Written here because no npm library implements Docker's dialect (it is not POSIX sh: no command
// substitution, no field splitting of expansions, configurable escape token).

export type Env = Map<string, string>;

export class ShellError extends Error {}

const SPECIAL_PARAMS = new Set(['@', '*', '#', '?', '-', '$', '!', '0']);

class Lexer {
  private pos = 0;
  private readonly src: string;
  private readonly env: Env;
  private readonly escape: string;
  constructor(src: string, env: Env, escape: string) {
    this.src = src;
    this.env = env;
    this.escape = escape;
  }

  private peek(): string | undefined {
    return this.src[this.pos];
  }
  private next(): string | undefined {
    return this.src[this.pos++];
  }

  /** Words as the shell would split them (whitespace outside quotes separates; expansions are not split). */
  words(): string[] {
    const out: string[] = [];
    let word = '';
    let inWord = false;
    while (this.peek() !== undefined) {
      const ch = this.peek()!;
      if (/\s/.test(ch)) {
        this.next();
        if (inWord) out.push(word);
        word = '';
        inWord = false;
        continue;
      }
      inWord = true;
      word += this.one(undefined);
    }
    if (inWord) out.push(word);
    return out;
  }

  /** The whole input as one word (whitespace kept). */
  word(): string {
    return this.until(undefined);
  }

  private until(stop: string | undefined): string {
    let out = '';
    while (this.peek() !== undefined) {
      if (stop !== undefined && this.peek() === stop) {
        this.next();
        return out;
      }
      out += this.one(stop);
    }
    if (stop !== undefined) throw new ShellError(`unexpected end of statement while looking for matching ${stop}`);
    return out;
  }

  /** One lexical element: a quoted string, an escaped char, an expansion or a plain char. */
  private one(stop: string | undefined): string {
    const ch = this.next()!;
    if (ch === this.escape) {
      const n = this.next();
      return n ?? '';
    }
    if (ch === "'") return this.singleQuoted();
    if (ch === '"') return this.doubleQuoted();
    if (ch === '$') return this.dollar();
    void stop;
    return ch;
  }

  private singleQuoted(): string {
    let out = '';
    for (;;) {
      const ch = this.next();
      if (ch === undefined) throw new ShellError('unexpected end of statement while looking for matching single-quote');
      if (ch === "'") return out;
      out += ch;
    }
  }

  private doubleQuoted(): string {
    let out = '';
    for (;;) {
      const ch = this.peek();
      if (ch === undefined) throw new ShellError('unexpected end of statement while looking for matching double-quote');
      if (ch === '"') {
        this.next();
        return out;
      }
      if (ch === '$') {
        this.next();
        out += this.dollar();
        continue;
      }
      this.next();
      if (ch === this.escape) {
        const n = this.peek();
        if (n === undefined) continue; // an escape at the end is dropped
        if (n === '"' || n === '$' || n === this.escape) {
          out += this.next();
          continue;
        }
      }
      out += ch;
    }
  }

  private name(): string {
    let name = '';
    for (;;) {
      const ch = this.peek();
      if (ch === undefined) break;
      if (name === '' && /[0-9]/.test(ch)) {
        while (this.peek() !== undefined && /[0-9]/.test(this.peek()!)) name += this.next();
        return name;
      }
      if (name === '' && SPECIAL_PARAMS.has(ch)) {
        this.next();
        return ch;
      }
      if (!/[\p{L}\p{N}_]/u.test(ch)) break;
      name += this.next();
    }
    return name;
  }

  private dollar(): string {
    if (this.peek() !== '{') {
      const name = this.name();
      if (name === '') return '$';
      return this.env.get(name) ?? '';
    }
    this.next(); // {
    const name = this.name();
    const ch = this.next();
    if (ch === undefined) throw new ShellError('syntax error: missing \'}\'');
    if (name === '') throw new ShellError('bad substitution');
    if (ch === '}') return this.env.get(name) ?? '';
    let op = ch;
    let colon = false;
    if (ch === ':') {
      colon = true;
      const m = this.next();
      if (m === undefined) throw new ShellError('syntax error: missing \'}\'');
      op = m;
    }
    if (op !== '-' && op !== '+' && op !== '?') {
      throw new ShellError(`unsupported modifier (${colon ? ':' : ''}${op}) in substitution`);
    }
    const word = this.until('}');
    const value = this.env.get(name);
    const set = value !== undefined && (!colon || value !== '');
    switch (op) {
      case '-':
        return set ? value! : word;
      case '+':
        return set ? word : '';
      default:
        if (set) return value!;
        throw new ShellError(word ? `${name}: ${word}` : `${name}: is not allowed to be unset`);
    }
  }
}

/** The escape token of a Dockerfile: `\` unless `# escape=` says `` ` ``. */
export function processWord(word: string, env: Env, escape = '\\'): string {
  return new Lexer(word, env, escape).word();
}

/** Words after substitution, split on unquoted whitespace (EXPOSE, VOLUME, COPY sources in shell form). */
export function processWords(word: string, env: Env, escape = '\\'): string[] {
  return new Lexer(word, env, escape).words();
}

/** `K=V` strings to a map (the last one wins, as in an environment). */
export function envMap(list: Iterable<string>): Env {
  const m: Env = new Map();
  for (const kv of list) {
    const i = kv.indexOf('=');
    if (i < 0) m.set(kv, '');
    else m.set(kv.slice(0, i), kv.slice(i + 1));
  }
  return m;
}
