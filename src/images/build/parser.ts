// The Dockerfile parser, with the rules of buildkit's frontend/dockerfile/parser (which moby's classic
// builder uses): parser directives (`# escape=`, `# syntax=`, `# check=`) only at the top, comments, line
// continuations with the escape token (comment and blank lines inside a continuation are skipped),
// `--flag` words before the arguments, and per instruction how its arguments are split: JSON (exec form)
// or a string (shell form), key=value pairs, whitespace-separated words.
// Heredocs (`RUN <<EOF`) are a buildkit feature the classic builder does not have: refused, naming the line.

export class ParseError extends Error {
  readonly line: number;
  constructor(line: number, message: string) {
    super(`dockerfile parse error on line ${line}: ${message}`);
    this.line = line;
  }
}

export interface Node {
  /** the instruction, lower case (`run`, `copy`, ...) */
  cmd: string;
  /** the instruction as written, upper case for messages */
  name: string;
  /** the joined line (continuations removed) */
  original: string;
  /** `--name=value` words that came before the arguments */
  flags: string[];
  /** arguments, split as the instruction's parser does */
  args: string[];
  /** exec form (a JSON array) */
  json: boolean;
  /** ENV/LABEL: key-value pairs; ARG: name and optional value */
  pairs?: { key: string; value: string | undefined }[];
  /** ONBUILD: the trigger */
  sub?: Node;
  startLine: number;
  endLine: number;
}

export interface Parsed {
  escape: string;
  syntax?: string;
  nodes: Node[];
}

const DIRECTIVE_RE = /^#[ \t]*([a-zA-Z][a-zA-Z0-9]*)[ \t]*=[ \t]*(.+?)[ \t]*$/;
const KNOWN_DIRECTIVES = new Set(['escape', 'syntax', 'check']);
const HEREDOC_RE = /<<-?\s*(["']?)([a-zA-Z_][a-zA-Z0-9_]*)\1/;

function isComment(line: string): boolean {
  return /^[ \t]*#/.test(line);
}

export function parseDockerfile(text: string): Parsed {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  let escape = '\\';
  let syntax: string | undefined;
  const seen = new Set<string>();
  let directivesDone = false;
  const nodes: Node[] = [];
  let contRe = /\\[ \t]*$/;

  let i = 0;
  while (i < lines.length) {
    const raw = lines[i]!;
    const lineNo = ++i;
    if (!directivesDone) {
      const m = DIRECTIVE_RE.exec(raw);
      if (m) {
        const key = m[1]!.toLowerCase();
        if (KNOWN_DIRECTIVES.has(key)) {
          if (seen.has(key)) throw new ParseError(lineNo, `only one ${key} parser directive can be used`);
          seen.add(key);
          if (key === 'escape') {
            if (m[2] !== '\\' && m[2] !== '`') throw new ParseError(lineNo, `invalid escape token '${m[2]}' does not match \` or \\`);
            escape = m[2]!;
            contRe = new RegExp(`${escape === '\\' ? '\\\\' : '`'}[ \\t]*$`);
          } else if (key === 'syntax') {
            syntax = m[2];
          }
        }
        continue;
      }
      directivesDone = true;
    }
    if (isComment(raw)) continue;
    let line = raw.replace(/^[ \t]+/, '');
    if (line.trim() === '') continue;
    const startLine = lineNo;
    let endLine = lineNo;
    let continued = contRe.test(line);
    if (continued) line = line.replace(contRe, '');
    while (continued && i < lines.length) {
      const next = lines[i]!;
      endLine = ++i;
      if (isComment(next)) continue;
      if (next.trim() === '') continue; // an empty continuation line (deprecated, still accepted)
      continued = contRe.test(next);
      line += continued ? next.replace(contRe, '') : next;
    }
    if (line.trim() === '') continue;
    nodes.push(nodeFromLine(line, escape, startLine, endLine));
  }
  if (nodes.length === 0) throw new Error('file with no instructions');
  return { escape, syntax, nodes };
}

function nodeFromLine(line: string, escape: string, startLine: number, endLine: number): Node {
  const trimmed = line.trim();
  const m = /^(\S+)(?:\s+([\s\S]*))?$/.exec(trimmed)!;
  const name = m[1]!;
  const cmd = name.toLowerCase();
  const { flags, rest } = extractFlags(m[2] ?? '');
  const node: Node = { cmd, name: name.toUpperCase(), original: trimmed, flags, args: [], json: false, startLine, endLine };
  if ((cmd === 'run' || cmd === 'copy' || cmd === 'add') && HEREDOC_RE.test(rest) && !/^\s*\[/.test(rest)) {
    const hm = HEREDOC_RE.exec(rest)!;
    // A shell heredoc whose body is on the same (joined) line is plain shell; one whose body would follow
    // on the next lines is buildkit's heredoc syntax.
    const after = rest.slice(hm.index + hm[0].length);
    if (cmd !== 'run' || !after.includes(hm[2]!)) {
      throw new ParseError(startLine, `heredocs (<<${hm[2]}) need BuildKit; loom's builder is the classic one`);
    }
  }
  try {
    fillArgs(node, rest, escape);
  } catch (e) {
    if (e instanceof ParseError) throw e;
    throw new ParseError(startLine, (e as Error).message);
  }
  return node;
}

/** Leading `--name[=value]` words (quotes allowed inside), as buildkit's extractBuilderFlags. */
export function extractFlags(s: string): { flags: string[]; rest: string } {
  const flags: string[] = [];
  let pos = 0;
  for (;;) {
    while (pos < s.length && /\s/.test(s[pos]!)) pos++;
    if (!s.startsWith('--', pos)) break;
    let word = '';
    let quote = '';
    while (pos < s.length) {
      const ch = s[pos]!;
      if (quote) {
        if (ch === quote) quote = '';
        else word += ch;
      } else if (ch === '"' || ch === "'") {
        quote = ch;
      } else if (/\s/.test(ch)) {
        break;
      } else {
        word += ch;
      }
      pos++;
    }
    if (word === '--') break; // `--` alone is an argument
    flags.push(word);
  }
  return { flags, rest: s.slice(pos) };
}

/** Splits on unquoted whitespace, keeping quotes and escapes in the words (buildkit's parseWords). */
export function parseWords(rest: string, escape: string): string[] {
  const words: string[] = [];
  let word = '';
  let quote = '';
  let blankOk = false;
  let inWord = false;
  for (let pos = 0; pos < rest.length; pos++) {
    let ch = rest[pos]!;
    if (!inWord) {
      if (/\s/.test(ch)) continue;
      inWord = true;
    }
    if (!quote) {
      if (/\s/.test(ch)) {
        if (blankOk || word.length) words.push(word);
        word = '';
        blankOk = false;
        inWord = false;
        continue;
      }
      if (ch === "'" || ch === '"') {
        quote = ch;
        blankOk = true;
      } else if (ch === escape) {
        if (pos + 1 === rest.length) continue;
        word += ch;
        ch = rest[++pos]!;
      }
      word += ch;
      continue;
    }
    if (ch === quote) quote = '';
    else if (ch === escape && quote !== "'") {
      if (pos + 1 === rest.length) continue;
      word += ch;
      ch = rest[++pos]!;
    }
    word += ch;
  }
  if (inWord && (blankOk || word.length)) words.push(word);
  return words;
}

function parseJson(rest: string): string[] | undefined {
  if (!/^\s*\[/.test(rest)) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(rest);
  } catch {
    return undefined;
  }
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) return undefined;
  return v as string[];
}

function fillArgs(node: Node, rest: string, escape: string): void {
  const ws = () => rest.trim() === '' ? [] : rest.trim().split(/[ \t\r\n\v\f]+/);
  switch (node.cmd) {
    case 'run':
    case 'cmd':
    case 'entrypoint':
    case 'shell': {
      const j = parseJson(rest);
      if (j) {
        node.args = j;
        node.json = true;
      } else if (rest.trim() !== '') {
        node.args = [rest.trim()];
      }
      return;
    }
    case 'copy':
    case 'add':
    case 'volume': {
      const j = parseJson(rest);
      if (j) {
        node.args = j;
        node.json = true;
      } else node.args = ws();
      return;
    }
    case 'from':
    case 'expose':
      node.args = ws();
      return;
    case 'env':
    case 'label':
      node.pairs = parseNameVal(rest, node.name, escape);
      node.args = node.pairs.flatMap((p) => [p.key, p.value ?? '']);
      return;
    case 'arg':
      node.pairs = parseWords(rest, escape).map((w) => {
        const i = w.indexOf('=');
        return i < 0 ? { key: w, value: undefined } : { key: w.slice(0, i), value: w.slice(i + 1) };
      });
      node.args = parseWords(rest, escape);
      return;
    case 'maintainer':
    case 'stopsignal':
    case 'user':
    case 'workdir':
      node.args = rest.trim() === '' ? [] : [rest.trim()];
      return;
    case 'healthcheck': {
      const m = /^\s*(\S+)\s*([\s\S]*)$/.exec(rest);
      if (!m) return;
      const type = m[1]!.toUpperCase();
      if (type === 'NONE') {
        if (m[2]!.trim()) throw new Error('HEALTHCHECK NONE takes no arguments');
        node.args = ['NONE'];
        return;
      }
      if (type !== 'CMD') throw new Error(`Unknown type "${type}" in HEALTHCHECK (try CMD)`);
      const j = parseJson(m[2]!);
      node.args = ['CMD', ...(j ?? (m[2]!.trim() ? [m[2]!.trim()] : []))];
      node.json = !!j;
      return;
    }
    case 'onbuild': {
      if (rest.trim() === '') return;
      const sub = nodeFromLine(rest, escape, node.startLine, node.endLine);
      node.sub = sub;
      node.args = [rest.trim()];
      return;
    }
    default:
      node.args = rest.trim() ? [rest.trim()] : [];
  }
}

/** ENV and LABEL: `KEY value with spaces` (the old form) or `K=V K2="v 2"` pairs (quotes kept for the lexer). */
function parseNameVal(rest: string, name: string, escape: string): { key: string; value: string }[] {
  const words = parseWords(rest, escape);
  if (words.length === 0) return [];
  if (!words[0]!.includes('=')) {
    const parts = rest.trim().split(/[ \t\r\n\v\f]+/);
    const m = /^(\S+)\s+([\s\S]*)$/.exec(rest.trim());
    if (parts.length < 2 || !m) throw new Error(`${name} must have two arguments`);
    return [{ key: m[1]!, value: m[2]! }];
  }
  return words.map((w) => {
    const i = w.indexOf('=');
    if (i < 0) throw new Error(`Syntax error - can't find = in "${w}". Must be of the form: name=value`);
    return { key: w.slice(0, i), value: w.slice(i + 1) };
  });
}
