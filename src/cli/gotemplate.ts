// Go's text/template, as the docker CLI uses it for `-f/--format`: the same syntax, the same functions
// (Go's builtins plus docker's json/join/split/lower/upper/title/pad/truncate) and the same printing, so
// that scripts written against `docker inspect -f ...` / `docker ps --format ...` work unchanged.
//
// Data is plain JSON-like JS values, which behave like the map[string]interface{} that docker decodes
// raw JSON into:
//   - a missing key is Go's "invalid value": it prints `<no value>`, and a field chain through it stays
//     `<no value>` (no error);
//   - a JSON null is a nil interface: a field chain through it is an error (`nil pointer evaluating
//     interface {}.X`), printed on its own it is `<no value>` (Go unwraps interfaces after every pipeline
//     stage), nested in a map/slice or passed to print it is `<nil>`;
//   - numbers that are integers print like Go ints (`1234`, never `1234.0` or `1.234e+03`), others like
//     Go's float64 %v;
//   - objects print as `map[k:v ...]` with sorted keys, arrays as `[a b]`; range visits map keys sorted.
// Errors read like Go's: `template: :1: function "foo" not defined` (parse) and
// `template: :1:2: executing "" at <.A.B>: nil pointer evaluating interface {}.B` (execution).

// ---------------------------------------------------------------------------------------------------
// Lexer

type TokType =
  | 'text' | 'left' | 'right' | 'field' | 'var' | 'dot' | 'ident' | 'kw' | 'string' | 'number' | 'bool' | 'nil'
  | 'lparen' | 'rparen' | 'pipe' | 'declare' | 'assign' | 'comma' | 'eof';

interface Tok {
  t: TokType;
  v: string; // source text (for text: the possibly trimmed text; for field/var: the name with its sigil)
  pos: number; // offset of the token in the template
  end: number; // offset just past the token
  sp: boolean; // whitespace precedes this token inside the action (Go separates operands by spaces)
  val?: unknown; // the value of a literal
}

const KEYWORDS = new Set(['if', 'else', 'end', 'range', 'with', 'define', 'template', 'block', 'break', 'continue']);

const isSpace = (c: string | undefined): boolean => c === ' ' || c === '\t' || c === '\r' || c === '\n';
const isAlnum = (c: string | undefined): boolean => c !== undefined && /^[\p{L}\p{Nd}_]$/u.test(c);
const isDigit = (c: string | undefined): boolean => c !== undefined && c >= '0' && c <= '9';

class TemplateSyntaxError extends Error {}

function lineOf(src: string, pos: number): number {
  let n = 1;
  for (let i = 0; i < pos && i < src.length; i++) if (src[i] === '\n') n++;
  return n;
}

function syntaxError(src: string, pos: number, msg: string): never {
  throw new TemplateSyntaxError(`template: :${lineOf(src, pos)}: ${msg}`);
}

function lex(src: string): Tok[] {
  const toks: Tok[] = [];
  let i = 0;
  let trimNext = false; // the previous action ended with ` -}}`: trim the whitespace that starts the next text
  for (;;) {
    const j = src.indexOf('{{', i);
    let textStart = i;
    let textEnd = j < 0 ? src.length : j;
    // `{{- ` (dash followed by a space character) trims the whitespace before the action
    const leftTrim = j >= 0 && src[j + 2] === '-' && isSpace(src[j + 3]);
    if (trimNext) while (textStart < textEnd && isSpace(src[textStart])) textStart++;
    if (leftTrim) while (textEnd > textStart && isSpace(src[textEnd - 1])) textEnd--;
    if (textEnd > textStart) toks.push({ t: 'text', v: src.slice(textStart, textEnd), pos: textStart, end: textEnd, sp: false });
    trimNext = false;
    if (j < 0) break;
    let p = j + 2 + (leftTrim ? 2 : 0);
    // A comment must follow the delimiter (and trim marker) immediately and end right before the closing one.
    if (src.startsWith('/*', p)) {
      const e = src.indexOf('*/', p + 2);
      if (e < 0) syntaxError(src, j, 'unclosed comment');
      let q = e + 2;
      if (isSpace(src[q]) && src[q + 1] === '-' && src.startsWith('}}', q + 2)) {
        trimNext = true;
        q += 4;
      } else if (src.startsWith('}}', q)) q += 2;
      else syntaxError(src, j, 'comment ends before closing delimiter');
      i = q;
      continue;
    }
    toks.push({ t: 'left', v: '{{', pos: j, end: p, sp: false });
    let sp = false;
    let parens = 0;
    for (;;) {
      const c = src[p];
      if (c === undefined) syntaxError(src, j, 'unclosed action');
      if (src.startsWith('}}', p)) {
        if (parens > 0) syntaxError(src, p, 'unclosed left paren');
        toks.push({ t: 'right', v: '}}', pos: p, end: p + 2, sp });
        p += 2;
        break;
      }
      if (isSpace(c)) {
        // ` -}}`: a single space character then the dash, right before the delimiter
        if (src[p + 1] === '-' && src.startsWith('}}', p + 2)) {
          if (parens > 0) syntaxError(src, p, 'unclosed left paren');
          toks.push({ t: 'right', v: '-}}', pos: p + 1, end: p + 4, sp: true });
          trimNext = true;
          p += 4;
          break;
        }
        p++;
        sp = true;
        continue;
      }
      const start = p;
      const push = (t: TokType, end: number, val?: unknown): void => {
        toks.push({ t, v: src.slice(start, end), pos: start, end, sp, val });
        p = end;
        sp = false;
      };
      if (c === '|') push('pipe', p + 1);
      else if (c === '(') {
        parens++;
        push('lparen', p + 1);
      } else if (c === ')') {
        if (--parens < 0) syntaxError(src, p, `unexpected right paren`);
        push('rparen', p + 1);
      } else if (c === ',') push('comma', p + 1);
      else if (c === ':') {
        if (src[p + 1] !== '=') syntaxError(src, p, 'expected :=');
        push('declare', p + 2);
      } else if (c === '=') push('assign', p + 1);
      else if (c === '"') {
        let q = p + 1;
        while (src[q] !== '"') {
          if (src[q] === undefined || src[q] === '\n') syntaxError(src, p, 'unterminated quoted string');
          if (src[q] === '\\') q++;
          q++;
        }
        push('string', q + 1, unquote(src, p, src.slice(p + 1, q), '"'));
      } else if (c === '`') {
        const q = src.indexOf('`', p + 1);
        if (q < 0) syntaxError(src, p, 'unterminated raw quoted string');
        push('string', q + 1, src.slice(p + 1, q));
      } else if (c === "'") {
        let q = p + 1;
        while (src[q] !== "'") {
          if (src[q] === undefined || src[q] === '\n') syntaxError(src, p, 'unterminated character constant');
          if (src[q] === '\\') q++;
          q++;
        }
        const s = unquote(src, p, src.slice(p + 1, q), "'");
        if ([...s].length !== 1) syntaxError(src, p, `malformed character constant: ${src.slice(p, q + 1)}`);
        push('number', q + 1, s.codePointAt(0));
      } else if (c === '$') {
        let q = p + 1;
        while (isAlnum(src[q])) q++;
        push('var', q);
        checkTerminator(src, p);
      } else if (c === '.' && !isDigit(src[p + 1])) {
        let q = p + 1;
        while (isAlnum(src[q])) q++;
        push(q === start + 1 ? 'dot' : 'field', q);
        checkTerminator(src, p);
      } else if (isDigit(c) || ((c === '+' || c === '-' || c === '.') && (isDigit(src[p + 1]) || (src[p + 1] === '.' && isDigit(src[p + 2]))))) {
        let q = p;
        while (q < src.length && /[0-9a-zA-Z_.+-]/.test(src[q]!)) {
          // a sign is part of the number only at its start or right after an exponent letter
          if ((src[q] === '+' || src[q] === '-') && q !== p && !/[eEpP]/.test(src[q - 1]!)) break;
          q++;
        }
        const text = src.slice(p, q);
        const n = parseNumber(text);
        if (n === undefined) syntaxError(src, p, `bad number syntax: "${text}"`);
        push('number', q, n);
      } else if (isAlnum(c)) {
        let q = p;
        while (isAlnum(src[q])) q++;
        const w = src.slice(p, q);
        if (w === 'true' || w === 'false') push('bool', q, w === 'true');
        else if (w === 'nil') push('nil', q, null);
        else push(KEYWORDS.has(w) ? 'kw' : 'ident', q);
        checkTerminator(src, p);
      } else syntaxError(src, p, `unrecognized character in action: U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')} '${c}'`);
    }
    i = p;
  }
  toks.push({ t: 'eof', v: '', pos: src.length, end: src.length, sp: false });
  return toks;
}

/** After a word, Go wants a space, a delimiter, `.`, `,`, `|`, `:`, `(`, `)` or the end of the action. */
function checkTerminator(src: string, p: number): void {
  let q = src[p] === '$' || src[p] === '.' ? p + 1 : p;
  while (isAlnum(src[q])) q++;
  const c = src[q];
  if (c === undefined || isSpace(c) || '.,|:()='.includes(c) || src.startsWith('}}', q)) return;
  syntaxError(src, q, `bad character U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')} '${c}'`);
}

function parseNumber(text: string): number | undefined {
  const t = text.replace(/_/g, '');
  if (/^[+-]?0[xX][0-9a-fA-F]+$/.test(t)) return (t[0] === '-' ? -1 : 1) * parseInt(t.replace(/^[+-]?0[xX]/, ''), 16);
  if (/^[+-]?0[oO]?[0-7]+$/.test(t)) return (t[0] === '-' ? -1 : 1) * parseInt(t.replace(/^[+-]?0[oO]?/, ''), 8);
  if (/^[+-]?0[bB][01]+$/.test(t)) return (t[0] === '-' ? -1 : 1) * parseInt(t.replace(/^[+-]?0[bB]/, ''), 2);
  if (/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(t)) return Number(t);
  return undefined;
}

/** Go's string/char literal escapes. */
function unquote(src: string, pos: number, body: string, quote: string): string {
  let out = '';
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c !== '\\') {
      out += c;
      continue;
    }
    const e = body[++i];
    const simple: Record<string, string> = { a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', '\\': '\\' };
    if (e !== undefined && e in simple) out += simple[e];
    else if (e === quote) out += quote;
    else if (e === 'x' || e === 'u' || e === 'U') {
      const len = e === 'x' ? 2 : e === 'u' ? 4 : 8;
      const hex = body.slice(i + 1, i + 1 + len);
      if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length !== len) syntaxError(src, pos, `invalid syntax in quoted string`);
      // \x is a byte; treating it as a code point is exact for ASCII, which is what templates use
      out += String.fromCodePoint(parseInt(hex, 16));
      i += len;
    } else if (e !== undefined && e >= '0' && e <= '7') {
      const oct = body.slice(i, i + 3);
      if (!/^[0-7]{3}$/.test(oct)) syntaxError(src, pos, `invalid syntax in quoted string`);
      out += String.fromCharCode(parseInt(oct, 8));
      i += 2;
    } else syntaxError(src, pos, `invalid syntax in quoted string`);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Parse tree

interface Loc {
  pos: number;
  src: string; // the node's text, for `executing "" at <...>`
}

type Arg = Loc &
  (
    | { k: 'field'; ident: string[] } // .A.B
    | { k: 'var'; name: string; ident: string[] } // $x.A.B
    | { k: 'dot' }
    | { k: 'nil' }
    | { k: 'lit'; value: unknown } // string, number, bool
    | { k: 'ident'; name: string } // a function
    | { k: 'pipe'; pipe: Pipe } // ( ... )
    | { k: 'chain'; node: Arg; ident: string[] } // ( ... ).A.B
  );

interface Cmd extends Loc {
  args: Arg[];
}

interface Pipe extends Loc {
  decl: string[];
  isAssign: boolean;
  cmds: Cmd[];
}

type Node =
  | { kind: 'text'; text: string }
  | ({ kind: 'action'; pipe: Pipe } & Loc)
  | ({ kind: 'if' | 'with' | 'range'; pipe: Pipe; list: Node[]; elseList: Node[] | null } & Loc)
  | ({ kind: 'break' | 'continue' } & Loc)
  | ({ kind: 'template'; name: string; pipe: Pipe | null } & Loc);

/** What ends a list: `{{end}}`, `{{else}}` (possibly `{{else if`/`{{else with`) or the end of input. */
type Term = { kind: 'end' } | { kind: 'else'; chain: 'if' | 'with' | null } | { kind: 'eof' };

interface Parsed {
  root: Node[];
  defs: Map<string, Node[]>;
}

const BUILTIN_NAMES = new Set([
  'and', 'or', 'not', 'len', 'index', 'slice', 'print', 'printf', 'println', 'html', 'js', 'urlquery', 'call',
  'eq', 'ne', 'lt', 'le', 'gt', 'ge',
  'json', 'join', 'split', 'lower', 'upper', 'title', 'pad', 'truncate',
]);

class Parser {
  readonly src: string;
  readonly toks: Tok[];
  i = 0;
  rangeDepth = 0;
  vars: string[] = ['$']; // declared variables in scope, for Go's parse-time "undefined variable"
  readonly defs = new Map<string, Node[]>();

  constructor(src: string) {
    this.src = src;
    this.toks = lex(src);
  }

  peek(): Tok {
    return this.toks[this.i]!;
  }
  next(): Tok {
    return this.toks[this.i++]!;
  }
  fail(tok: Tok, msg: string): never {
    syntaxError(this.src, tok.pos, msg);
  }
  unexpected(tok: Tok, context: string): never {
    const what = tok.t === 'eof' ? 'EOF' : tok.t === 'right' ? '"}}"' : tok.t === 'kw' ? `<${tok.v}>` : JSON.stringify(tok.v);
    this.fail(tok, `unexpected ${what} in ${context}`);
  }
  expect(t: TokType, context: string): Tok {
    const tok = this.next();
    if (tok.t !== t) this.unexpected(tok, context);
    return tok;
  }

  parse(): Parsed {
    const root: Node[] = [];
    while (this.peek().t !== 'eof') {
      const tok = this.peek();
      if (tok.t === 'left' && this.toks[this.i + 1]!.t === 'kw' && this.toks[this.i + 1]!.v === 'define') {
        this.i += 2;
        this.parseDefine();
        continue;
      }
      const n = this.textOrAction();
      if ('kind' in n && (n.kind === 'end' || n.kind === 'else')) this.fail(tok, `unexpected {{${n.kind}}}`);
      root.push(n as Node);
    }
    return { root, defs: this.defs };
  }

  parseDefine(): void {
    const nameTok = this.next();
    if (nameTok.t !== 'string') this.unexpected(nameTok, 'define clause');
    this.expect('right', 'define clause');
    const saved = this.vars;
    this.vars = ['$'];
    const { list, term } = this.itemList();
    this.vars = saved;
    if (term.kind !== 'end') this.fail(nameTok, `unexpected {{else}} in define`);
    this.defs.set(nameTok.val as string, list);
  }

  /** Nodes up to `{{end}}` or `{{else}}`; the end of input there is an error. */
  itemList(): { list: Node[]; term: Term } {
    const list: Node[] = [];
    for (;;) {
      const tok = this.peek();
      if (tok.t === 'eof') this.fail(tok, 'unexpected EOF');
      const n = this.textOrAction();
      if (n.kind === 'end' || n.kind === 'else') return { list, term: n as Term };
      list.push(n as Node);
    }
  }

  textOrAction(): Node | Term {
    const tok = this.next();
    if (tok.t === 'text') return { kind: 'text', text: tok.v };
    if (tok.t !== 'left') this.unexpected(tok, 'input');
    const kw = this.peek();
    if (kw.t === 'kw') {
      this.next();
      switch (kw.v) {
        case 'if':
        case 'with':
        case 'range':
          return this.control(kw.v, kw);
        case 'end':
          this.expect('right', 'end');
          return { kind: 'end' };
        case 'else': {
          // `{{else if ...}}` / `{{else with ...}}`: leave the keyword for the enclosing control to see
          const n = this.peek();
          if (n.t === 'kw' && (n.v === 'if' || n.v === 'with')) return { kind: 'else', chain: n.v };
          this.expect('right', 'else');
          return { kind: 'else', chain: null };
        }
        case 'break':
        case 'continue':
          if (this.rangeDepth === 0) this.fail(kw, `{{${kw.v}}} outside {{range}}`);
          this.expect('right', kw.v);
          return { kind: kw.v, pos: kw.pos, src: kw.v };
        case 'template':
          return this.templateControl(kw);
        case 'block': {
          const node = this.templateControl(kw, true);
          const saved = this.vars;
          this.vars = ['$'];
          const { list, term } = this.itemList();
          this.vars = saved;
          if (term.kind !== 'end') this.fail(kw, 'unexpected {{else}} in block clause');
          this.defs.set(node.name, list);
          return node;
        }
        default:
          this.fail(kw, `unexpected <${kw.v}> in command`);
      }
    }
    const pipe = this.pipeline('command', 'right');
    return { kind: 'action', pipe, pos: tok.pos, src: pipe.src };
  }

  templateControl(kw: Tok, isBlock = false): Node & { kind: 'template' } {
    const context = isBlock ? 'block clause' : 'template clause';
    const nameTok = this.next();
    if (nameTok.t !== 'string') this.unexpected(nameTok, context);
    let pipe: Pipe | null = null;
    if (this.peek().t !== 'right') pipe = this.pipeline(context, 'right');
    else this.next();
    if (isBlock && !pipe) this.fail(kw, 'missing pipeline in block clause');
    return { kind: 'template', name: nameTok.val as string, pipe, pos: kw.pos, src: `template ${nameTok.v}` };
  }

  control(kind: 'if' | 'with' | 'range', kw: Tok): Node {
    const nVars = this.vars.length;
    const pipe = this.pipeline(kind, 'right');
    if (kind === 'range') this.rangeDepth++;
    const { list, term } = this.itemList();
    if (kind === 'range') this.rangeDepth--;
    let elseList: Node[] | null = null;
    if (term.kind === 'else') {
      if (term.chain !== null) {
        // `{{else if}}` continues an if, `{{else with}}` a with; the nested control consumes the shared {{end}}
        if (term.chain !== kind) this.unexpected(this.peek(), `{{else}} of ${kind}`);
        const ckw = this.next();
        elseList = [this.control(kind, ckw)];
      } else {
        const r = this.itemList();
        if (r.term.kind !== 'end') this.fail(kw, `expected end; found {{else}}`);
        elseList = r.list;
      }
    }
    this.vars.length = nVars; // variables declared inside end with the control structure
    return { kind, pipe, list, elseList, pos: kw.pos, src: `${kind} ${pipe.src}` };
  }

  pipeline(context: string, end: 'right' | 'rparen'): Pipe {
    const first = this.peek();
    const decl: string[] = [];
    let isAssign = false;
    if (first.t === 'var') {
      const save = this.i;
      const v = this.next();
      const n = this.peek();
      if ((n.t === 'declare' || n.t === 'assign') && n.sp !== undefined) {
        this.next();
        isAssign = n.t === 'assign';
        decl.push(v.v);
      } else if (n.t === 'comma') {
        this.next();
        const v2 = this.next();
        if (context !== 'range' || v2.t !== 'var') this.fail(n, `too many declarations in ${context}`);
        const op = this.next();
        if (op.t !== 'declare' && op.t !== 'assign') this.unexpected(op, `${context}`);
        isAssign = op.t === 'assign';
        decl.push(v.v, v2.v);
      } else this.i = save;
      if (isAssign) for (const d of decl) this.useVar(d, v);
    }
    const cmds: Cmd[] = [];
    for (;;) {
      const tok = this.peek();
      if (tok.t === end) {
        this.next();
        break;
      }
      if (cmds.length > 0) {
        if (tok.t !== 'pipe') this.unexpected(tok, context);
        this.next();
      }
      const t2 = this.peek();
      if (t2.t === end || t2.t === 'pipe') this.fail(t2, cmds.length ? 'missing command' : `missing value for ${context}`);
      cmds.push(this.command(context));
    }
    if (cmds.length === 0) this.fail(first, `missing value for ${context}`);
    // declared after the pipeline is parsed: `{{$x := $x}}` refers to an outer $x
    if (!isAssign) this.vars.push(...decl);
    const last = this.toks[this.i - 2]!; // the token before the closing delimiter
    return { decl, isAssign, cmds, pos: first.pos, src: this.src.slice(first.pos, last.end) };
  }

  command(context: string): Cmd {
    const args: Arg[] = [];
    for (;;) {
      const tok = this.peek();
      if (args.length > 0 && !tok.sp && tok.t !== 'pipe' && tok.t !== 'right' && tok.t !== 'rparen') this.unexpected(tok, 'operand');
      const op = this.operand();
      if (!op) {
        if (tok.t === 'pipe' || tok.t === 'right' || tok.t === 'rparen') break;
        this.unexpected(tok, context);
      }
      args.push(op);
    }
    const first = args[0]!;
    const last = args[args.length - 1]!;
    return { args, pos: first.pos, src: this.src.slice(first.pos, last.pos + last.src.length) };
  }

  operand(): Arg | null {
    const node = this.term();
    if (!node) return null;
    const fields: string[] = [];
    let endTok: Tok | null = null;
    while (this.peek().t === 'field' && !this.peek().sp) {
      endTok = this.next();
      fields.push(endTok.v.slice(1));
    }
    if (!endTok) return node;
    const src = this.src.slice(node.pos, endTok.end);
    switch (node.k) {
      case 'field':
        return { ...node, ident: [...node.ident, ...fields], src };
      case 'var':
        return { ...node, ident: [...node.ident, ...fields], src };
      case 'lit':
      case 'nil':
      case 'dot':
        this.fail(endTok, `unexpected . after term "${node.src}"`);
      default:
        return { k: 'chain', node, ident: fields, pos: node.pos, src };
    }
  }

  term(): Arg | null {
    const tok = this.peek();
    const loc = { pos: tok.pos, src: tok.v };
    switch (tok.t) {
      case 'ident':
        this.next();
        if (!BUILTIN_NAMES.has(tok.v)) this.fail(tok, `function "${tok.v}" not defined`);
        return { k: 'ident', name: tok.v, ...loc };
      case 'dot':
        this.next();
        return { k: 'dot', ...loc };
      case 'nil':
        this.next();
        return { k: 'nil', ...loc };
      case 'var':
        this.next();
        this.useVar(tok.v, tok);
        return { k: 'var', name: tok.v, ident: [], ...loc };
      case 'field':
        this.next();
        return { k: 'field', ident: [tok.v.slice(1)], ...loc };
      case 'bool':
      case 'number':
      case 'string':
        this.next();
        return { k: 'lit', value: tok.val, ...loc };
      case 'lparen': {
        this.next();
        const pipe = this.pipeline('parenthesized pipeline', 'rparen');
        const close = this.toks[this.i - 1]!;
        return { k: 'pipe', pipe, pos: tok.pos, src: this.src.slice(tok.pos, close.end) };
      }
      default:
        return null;
    }
  }

  useVar(name: string, tok: Tok): void {
    if (!this.vars.includes(name)) this.fail(tok, `undefined variable "${name}"`);
  }
}

// ---------------------------------------------------------------------------------------------------
// Values as Go sees them

/** "No final argument" in a pipeline stage (distinct from an invalid value, which is `undefined`). */
const MISSING: unique symbol = Symbol('missing');
type Final = unknown;

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const isNil = (v: unknown): v is null | undefined => v === null || v === undefined;

/** Go's type name for error messages, as the value would have after decoding JSON into interface{}. */
function goType(v: unknown): string {
  if (v === undefined || v === null) return 'interface {}';
  if (typeof v === 'string') return 'string';
  if (typeof v === 'number') return Number.isInteger(v) ? 'int' : 'float64';
  if (typeof v === 'boolean') return 'bool';
  if (Array.isArray(v)) return '[]interface {}';
  if (typeof v === 'function') return 'func';
  return 'map[string]interface {}';
}

/** Object keys in Go's map order (sorted), without keys whose value is undefined (absent in JSON). */
function mapKeys(o: Obj): string[] {
  return Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** A number as Go prints it: integers like int, others like float64's %v (shortest, %e outside 1e-4..1e21). */
function goNumber(n: number): string {
  if (Number.isInteger(n) && Math.abs(n) < 1e21) return String(n);
  if (!Number.isFinite(n)) return Number.isNaN(n) ? 'NaN' : n > 0 ? '+Inf' : '-Inf';
  const [mant, expStr] = n.toExponential().split('e') as [string, string];
  const exp = Number(expStr);
  if (exp < -4 || exp >= 21) return `${mant}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  return String(n);
}

/** fmt's %v. `top` is the value printed by an action: an invalid value there is `<no value>`. */
function fmtV(v: unknown): string {
  if (v === undefined || v === null) return '<nil>';
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return goNumber(v);
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'bigint') return v.toString();
  if (Array.isArray(v)) return `[${v.map(fmtV).join(' ')}]`;
  if (typeof v === 'function') return '<func>';
  if (v instanceof Date) return v.toISOString();
  const o = v as Obj;
  return `map[${mapKeys(o).map((k) => `${k}:${fmtV(o[k])}`).join(' ')}]`;
}

/** Go's template truth: false, 0, "", nil and empty collections are false. */
function truth(v: unknown): boolean {
  if (isNil(v)) return false;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'number') return v !== 0;
  if (typeof v === 'string') return v.length > 0;
  if (Array.isArray(v)) return v.length > 0;
  if (isObj(v)) return mapKeys(v).length > 0;
  return true;
}

/** Go's fmt.Sprint: a space between operands when neither side is a string. */
function sprint(args: unknown[]): string {
  let out = '';
  args.forEach((a, i) => {
    if (i > 0 && typeof a !== 'string' && typeof args[i - 1] !== 'string') out += ' ';
    out += fmtV(a);
  });
  return out;
}

function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    const named: Record<string, string> = { '\x07': '\\a', '\b': '\\b', '\f': '\\f', '\n': '\\n', '\r': '\\r', '\t': '\\t', '\v': '\\v', '"': '\\"', '\\': '\\\\' };
    if (ch in named) out += named[ch];
    else if (c < 0x20 || c === 0x7f) out += `\\x${c.toString(16).padStart(2, '0')}`;
    else if ((c >= 0x80 && c < 0xa0) || c === 0xfeff || (c >= 0xd800 && c < 0xe000)) out += `\\u${c.toString(16).padStart(4, '0')}`;
    else out += ch;
  }
  return out + '"';
}

interface FmtFlags {
  minus: boolean;
  plus: boolean;
  sharp: boolean;
  zero: boolean;
  space: boolean;
  width: number;
  prec: number;
}

function pad(s: string, f: FmtFlags, numeric: boolean): string {
  const len = [...s].length;
  if (f.width < 0 || len >= f.width) return s;
  const n = f.width - len;
  if (f.minus) return s + ' '.repeat(n);
  if (f.zero && numeric) {
    const sign = /^[+\- ]/.test(s) ? s[0]! : '';
    return sign + '0'.repeat(n) + s.slice(sign.length);
  }
  return ' '.repeat(n) + s;
}

function expFix(s: string, upper: boolean): string {
  // JS writes 1e+0, Go 1e+00
  const r = s.replace(/e([+-])(\d)$/, 'e$10$2');
  return upper ? r.toUpperCase() : r;
}

function fmtFloat(n: number, verb: string, f: FmtFlags): string {
  let s: string;
  const upper = verb === 'E' || verb === 'G' || verb === 'F';
  if (!Number.isFinite(n)) s = Number.isNaN(n) ? 'NaN' : n > 0 ? '+Inf' : '-Inf';
  else if (verb === 'f' || verb === 'F') s = n.toFixed(f.prec < 0 ? 6 : Math.min(f.prec, 100));
  else if (verb === 'e' || verb === 'E') s = expFix(n.toExponential(f.prec < 0 ? 6 : Math.min(f.prec, 100)), upper);
  else {
    // %g: shortest (or prec significant digits), %e form when the exponent is < -4 or >= the precision
    const digits = f.prec < 0 ? undefined : Math.max(1, Math.min(f.prec, 100));
    const [mant, e] = (digits === undefined ? n.toExponential() : n.toExponential(digits - 1)).split('e') as [string, string];
    const exp = Number(e);
    const eprec = digits === undefined ? (Number.isInteger(n) ? 21 : 6) : digits;
    const m = mant.includes('.') ? mant.replace(/\.?0+$/, '') : mant;
    if (exp < -4 || exp >= eprec) s = expFix(`${m}e${exp < 0 ? '-' : '+'}${Math.abs(exp)}`, upper);
    else s = String(Number(`${m}e${exp}`));
  }
  if (n >= 0 && !s.startsWith('+')) s = (f.plus ? '+' : f.space ? ' ' : '') + s;
  return pad(s, f, true);
}

function fmtInt(n: number, verb: string, f: FmtFlags): string {
  const neg = n < 0;
  const a = Math.abs(n);
  let digits: string;
  switch (verb) {
    case 'b':
      digits = a.toString(2);
      break;
    case 'o':
    case 'O':
      digits = a.toString(8);
      break;
    case 'x':
      digits = a.toString(16);
      break;
    case 'X':
      digits = a.toString(16).toUpperCase();
      break;
    default:
      digits = String(a);
  }
  if (f.prec >= 0) digits = digits.padStart(f.prec, '0');
  if (verb === 'O') digits = '0o' + digits;
  else if (f.sharp && verb === 'x') digits = '0x' + digits;
  else if (f.sharp && verb === 'X') digits = '0X' + digits;
  else if (f.sharp && verb === 'o' && !digits.startsWith('0')) digits = '0' + digits;
  const sign = neg ? '-' : f.plus ? '+' : f.space ? ' ' : '';
  return pad(sign + digits, f.prec >= 0 ? { ...f, zero: false } : f, true);
}

/** One printf operand. Collections apply the verb to each element, as Go's fmt does. */
function fmtArg(a: unknown, verb: string, f: FmtFlags, depth: number): string {
  const bad = (): string => (isNil(a) ? `%!${verb}(<nil>)` : `%!${verb}(${goType(a)}=${fmtV(a)})`);
  if (isNil(a)) return depth > 0 || verb === 'v' ? pad('<nil>', f, false) : bad();
  if (Array.isArray(a)) {
    if (verb === 'x' || verb === 'X' || verb === 's' || verb === 'q' || verb === 'v' || verb === 'd' || 'boOcUeEfFgGt'.includes(verb))
      return `[${a.map((x) => fmtArg(x, verb, f, depth + 1)).join(' ')}]`;
    return bad();
  }
  if (isObj(a)) {
    const keys = mapKeys(a);
    return `map[${keys.map((k) => `${fmtArg(k, verb, f, depth + 1)}:${fmtArg(a[k], verb, f, depth + 1)}`).join(' ')}]`;
  }
  if (typeof a === 'string') {
    switch (verb) {
      case 'v':
      case 's':
        return pad(f.prec >= 0 ? [...a].slice(0, f.prec).join('') : a, f, false);
      case 'q':
        return pad(goQuote(a), f, false);
      case 'x':
      case 'X': {
        const h = Buffer.from(a, 'utf8').toString('hex');
        return pad(verb === 'X' ? h.toUpperCase() : h, f, false);
      }
      default:
        return bad();
    }
  }
  if (typeof a === 'number') {
    if (verb === 'v') return Number.isInteger(a) ? fmtInt(a, 'd', f) : fmtFloat(a, 'g', f);
    if ('eEfFgG'.includes(verb)) return fmtFloat(a, verb, f);
    if (!Number.isInteger(a)) return bad();
    if ('bdoOxX'.includes(verb)) return fmtInt(a, verb, f);
    if (verb === 'c') return pad(String.fromCodePoint(a), f, false);
    if (verb === 'q') return pad(`'${String.fromCodePoint(a)}'`, f, false);
    if (verb === 'U') return pad(`U+${a.toString(16).toUpperCase().padStart(4, '0')}`, f, false);
    return bad();
  }
  if (typeof a === 'boolean') return verb === 'v' || verb === 't' ? pad(String(a), f, false) : bad();
  return verb === 'v' ? pad(fmtV(a), f, false) : bad();
}

/** Go's fmt.Sprintf for the verbs templates use (%s %d %v %q %x %t %f %e %g %c %b %o %U %%). */
export function sprintf(format: string, args: unknown[]): string {
  let out = '';
  let ai = 0;
  let i = 0;
  while (i < format.length) {
    const c = format[i]!;
    if (c !== '%') {
      out += c;
      i++;
      continue;
    }
    i++;
    const f: FmtFlags = { minus: false, plus: false, sharp: false, zero: false, space: false, width: -1, prec: -1 };
    for (; i < format.length; i++) {
      const fl = format[i];
      if (fl === '-') f.minus = true;
      else if (fl === '+') f.plus = true;
      else if (fl === '#') f.sharp = true;
      else if (fl === '0') f.zero = !f.minus;
      else if (fl === ' ') f.space = true;
      else break;
    }
    const num = (): number => {
      if (format[i] === '*') {
        i++;
        const a = args[ai++];
        return typeof a === 'number' && Number.isInteger(a) ? a : -1;
      }
      let s = '';
      while (isDigit(format[i])) s += format[i++];
      return s ? Number(s) : -1;
    };
    f.width = num();
    if (f.width < -1) {
      f.minus = true;
      f.width = -f.width;
    }
    if (format[i] === '.') {
      i++;
      f.prec = Math.max(num(), 0);
    }
    if (i >= format.length) {
      out += '%!(NOVERB)';
      break;
    }
    const verb = String.fromCodePoint(format.codePointAt(i)!);
    i += verb.length;
    if (verb === '%') {
      out += '%';
      continue;
    }
    if (ai >= args.length) {
      out += `%!${verb}(MISSING)`;
      continue;
    }
    out += fmtArg(args[ai++], verb, f, 0);
  }
  if (ai < args.length) out += `%!(EXTRA ${args.slice(ai).map((a) => (isNil(a) ? '<nil>' : `${goType(a)}=${fmtV(a)}`)).join(', ')})`;
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Functions

/** How an argument is checked before the call (Go checks a function's parameter types). */
type ParamType = 'any' | 'string' | 'int' | 'list';

interface Func {
  params: ParamType[]; // for variadic functions, the last entry repeats
  variadic?: boolean;
  fn: (...args: any[]) => unknown;
}

/** Go's basic kinds for comparisons (all JS numbers are one kind). */
function basicKind(v: unknown): 'bool' | 'number' | 'string' | null {
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'number') return 'number';
  if (typeof v === 'string') return 'string';
  return null;
}

function eq(a: unknown, ...bs: unknown[]): boolean {
  if (bs.length === 0) throw new Error('missing argument for comparison');
  for (const b of bs) {
    const ka = basicKind(a);
    const kb = basicKind(b);
    if (ka !== kb || (ka === null && (isNil(a) !== isNil(b) || Array.isArray(a) !== Array.isArray(b)))) {
      if (!isNil(a) && !isNil(b)) throw new Error('incompatible types for comparison');
      continue; // nil against a value: not equal
    }
    if (ka !== null) {
      if (a === b) return true;
    } else if (isNil(a) && isNil(b)) return true;
    else throw new Error(`non-comparable type ${fmtV(a)}: ${goType(a)}`);
  }
  return false;
}

function lt(a: unknown, b: unknown): boolean {
  const ka = basicKind(a);
  const kb = basicKind(b);
  if (ka === null || kb === null) throw new Error('invalid type for comparison');
  if (ka !== kb) throw new Error('incompatible types for comparison');
  if (ka === 'bool') throw new Error('invalid type for comparison');
  return (a as number | string) < (b as number | string);
}

function indexArg(i: unknown, len: number): number {
  if (typeof i !== 'number' || !Number.isInteger(i)) throw new Error(`cannot index slice/array with type ${goType(i)}`);
  if (i < 0 || i > len) throw new Error(`index out of range: ${i}`);
  return i;
}

function index(item: unknown, ...idx: unknown[]): unknown {
  if (item === undefined) throw new Error('index of untyped nil');
  for (const i of idx) {
    if (item === null || item === undefined) throw new Error('index of nil pointer');
    if (typeof item === 'string' || Array.isArray(item)) {
      const bytes = typeof item === 'string' ? Buffer.from(item, 'utf8') : null;
      const len = bytes ? bytes.length : (item as unknown[]).length;
      const x = indexArg(i, len);
      if (x === len) throw new Error(`index out of range: ${x}`);
      item = bytes ? bytes[x] : (item as unknown[])[x];
    } else if (isObj(item)) {
      if (typeof i !== 'string') throw new Error(`value has type ${goType(i)}; should be string`);
      // a missing key gives the zero value, a nil interface
      item = Object.hasOwn(item, i) && item[i] !== undefined ? item[i] : null;
    } else throw new Error(`can't index item of type ${goType(item)}`);
  }
  return item;
}

function slice(item: unknown, ...idx: unknown[]): unknown {
  if (isNil(item)) throw new Error('slice of untyped nil');
  if (idx.length > 3) throw new Error(`too many slice indexes: ${idx.length}`);
  let len: number;
  if (typeof item === 'string') {
    if (idx.length === 3) throw new Error('cannot 3-index slice a string');
    len = Buffer.byteLength(item);
  } else if (Array.isArray(item)) len = item.length;
  else throw new Error(`can't slice item of type ${goType(item)}`);
  const ix = [0, len];
  idx.forEach((v, n) => (ix[n] = indexArg(v, len)));
  if (idx.length === 3 && ix[1]! > ix[2]!) throw new Error(`invalid slice index: ${ix[1]} > ${ix[2]}`);
  if (ix[0]! > ix[1]!) throw new Error(`invalid slice index: ${ix[0]} > ${ix[1]}`);
  return typeof item === 'string' ? Buffer.from(item, 'utf8').subarray(ix[0], ix[1]).toString('utf8') : item.slice(ix[0], ix[1]);
}

function length(item: unknown): number {
  if (item === undefined) throw new Error('len of untyped nil');
  if (item === null) throw new Error('len of nil pointer');
  if (typeof item === 'string') return Buffer.byteLength(item);
  if (Array.isArray(item)) return item.length;
  if (isObj(item)) return mapKeys(item).length;
  throw new Error(`len of type ${goType(item)}`);
}

/** html/js/urlquery: one string argument as is, anything else through Sprint. */
const evalArgs = (args: unknown[]): string => (args.length === 1 && typeof args[0] === 'string' ? args[0] : sprint(args));

function htmlEscape(s: string): string {
  return s.replace(/[<>&'"\0]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&#39;', '"': '&#34;', '\0': '\uFFFD' })[c]!);
}

function jsEscape(s: string): string {
  let out = '';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '\\') out += '\\\\';
    else if (ch === "'") out += "\\'";
    else if (ch === '"') out += '\\"';
    else if ('<>&='.includes(ch) || c < 0x20) out += `\\u${c.toString(16).toUpperCase().padStart(4, '0')}`;
    else out += ch;
  }
  return out;
}

function urlQueryEscape(s: string): string {
  return [...Buffer.from(s, 'utf8')]
    .map((b) => {
      const c = String.fromCharCode(b);
      if (/[A-Za-z0-9\-_.~]/.test(c)) return c;
      if (c === ' ') return '+';
      return `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
    })
    .join('');
}

/** strings.Title: upper-case the first letter of each word. */
function title(s: string): string {
  let prev = ' ';
  let out = '';
  for (const ch of s) {
    out += /[\p{L}\p{Nd}_']/u.test(prev) ? ch : ch.toUpperCase();
    prev = ch;
  }
  return out;
}

/**
 * A value whose JSON is its own (Go's json.Marshaler): docker's formatter contexts marshal themselves with
 * json.Marshal, which escapes <, > and & even inside docker's non-escaping `json` function.
 */
export const GO_MARSHAL = Symbol('go-marshal');

/** docker's json: encoding/json without HTML escaping and without the encoder's trailing newline. */
function goJson(v: unknown): string {
  const own = v !== null && typeof v === 'object' ? (v as { [GO_MARSHAL]?: () => string })[GO_MARSHAL] : undefined;
  if (typeof own === 'function') return own.call(v);
  let s: string | undefined;
  try {
    s = JSON.stringify(v === undefined ? null : v);
  } catch {
    return ''; // docker ignores the encoder's error and prints what it got: nothing
  }
  return (s ?? 'null').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

const FUNCS: Record<string, Func> = {
  // Go's builtins (and/or are special-cased: they short-circuit)
  not: { params: ['any'], fn: (a: unknown) => !truth(a) },
  len: { params: ['any'], fn: length },
  index: { params: ['any', 'any'], variadic: true, fn: index },
  slice: { params: ['any', 'any'], variadic: true, fn: slice },
  print: { params: ['any'], variadic: true, fn: (...a: unknown[]) => sprint(a) },
  println: { params: ['any'], variadic: true, fn: (...a: unknown[]) => a.map(fmtV).join(' ') + '\n' },
  printf: { params: ['string', 'any'], variadic: true, fn: (f: string, ...a: unknown[]) => sprintf(f, a) },
  html: { params: ['any'], variadic: true, fn: (...a: unknown[]) => htmlEscape(evalArgs(a)) },
  js: { params: ['any'], variadic: true, fn: (...a: unknown[]) => jsEscape(evalArgs(a)) },
  urlquery: { params: ['any'], variadic: true, fn: (...a: unknown[]) => urlQueryEscape(evalArgs(a)) },
  call: {
    params: ['any', 'any'],
    variadic: true,
    fn: (f: unknown, ...a: unknown[]) => {
      if (typeof f !== 'function') throw new Error(`non-function of type ${goType(f)}`);
      return f(...a);
    },
  },
  eq: { params: ['any', 'any'], variadic: true, fn: eq },
  ne: { params: ['any', 'any'], fn: (a: unknown, b: unknown) => !eq(a, b) },
  lt: { params: ['any', 'any'], fn: lt },
  le: { params: ['any', 'any'], fn: (a: unknown, b: unknown) => lt(a, b) || eq(a, b) },
  gt: { params: ['any', 'any'], fn: (a: unknown, b: unknown) => !(lt(a, b) || eq(a, b)) },
  ge: { params: ['any', 'any'], fn: (a: unknown, b: unknown) => !lt(a, b) },
  // docker's additions (cli/templates)
  json: { params: ['any'], fn: goJson },
  split: { params: ['string', 'string'], fn: (s: string, sep: string) => (sep === '' ? [...s] : s.split(sep)) },
  join: { params: ['list', 'string'], fn: (l: unknown[], sep: string) => l.map((x) => (typeof x === 'string' ? x : fmtV(x))).join(sep) },
  title: { params: ['string'], fn: title },
  lower: { params: ['string'], fn: (s: string) => s.toLowerCase() },
  upper: { params: ['string'], fn: (s: string) => s.toUpperCase() },
  pad: { params: ['string', 'int', 'int'], fn: (s: string, pre: number, post: number) => (s === '' ? s : ' '.repeat(Math.max(pre, 0)) + s + ' '.repeat(Math.max(post, 0))) },
  truncate: {
    params: ['string', 'int'],
    fn: (s: string, n: number) => {
      const cps = [...s];
      if (cps.length < n) return s;
      if (n < 0) throw new Error(`slice bounds out of range [:${n}]`);
      return cps.slice(0, n).join('');
    },
  },
};

// ---------------------------------------------------------------------------------------------------
// Execution

class Break {}
class Continue {}

const MAX_DEPTH = 1000;

class Exec {
  readonly src: string;
  readonly defs: Map<string, Node[]>;
  name = '';
  vars: { name: string; value: unknown }[] = [];
  out: string[] = [];
  at: Loc = { pos: 0, src: '' };
  depth = 0;
  funcs: Record<string, Func> = FUNCS;

  constructor(src: string, defs: Map<string, Node[]>) {
    this.src = src;
    this.defs = defs;
  }

  fail(msg: string): never {
    const before = this.src.slice(0, this.at.pos);
    const line = before.split('\n').length;
    const col = this.at.pos - (before.lastIndexOf('\n') + 1);
    const ctx = this.at.src.length > 20 ? `${this.at.src.slice(0, 20)}...` : this.at.src;
    throw new Error(`template: :${line}:${col}: executing "${this.name}" at <${ctx}>: ${msg}`);
  }

  lookup(name: string): unknown {
    for (let i = this.vars.length - 1; i >= 0; i--) if (this.vars[i]!.name === name) return this.vars[i]!.value;
    this.fail(`undefined variable: ${name}`);
  }

  setVar(name: string, value: unknown): void {
    for (let i = this.vars.length - 1; i >= 0; i--) {
      if (this.vars[i]!.name === name) {
        this.vars[i]!.value = value;
        return;
      }
    }
    this.fail(`undefined variable: ${name}`);
  }

  walkList(dot: unknown, list: Node[]): void {
    for (const n of list) this.walk(dot, n);
  }

  walk(dot: unknown, node: Node): void {
    switch (node.kind) {
      case 'text':
        this.out.push(node.text);
        return;
      case 'action': {
        const v = this.evalPipeline(dot, node.pipe);
        if (node.pipe.decl.length === 0) this.out.push(v === undefined ? '<no value>' : fmtV(v));
        return;
      }
      case 'if':
      case 'with': {
        const mark = this.vars.length;
        const v = this.evalPipeline(dot, node.pipe);
        if (truth(v)) this.walkList(node.kind === 'with' ? v : dot, node.list);
        else if (node.elseList) this.walkList(dot, node.elseList);
        this.vars.length = mark;
        return;
      }
      case 'range':
        this.walkRange(dot, node);
        return;
      case 'break':
        throw new Break();
      case 'continue':
        throw new Continue();
      case 'template': {
        const list = this.defs.get(node.name);
        this.at = node;
        if (!list) this.fail(`no such template "${node.name}"`);
        const v = node.pipe ? this.evalPipeline(dot, node.pipe) : undefined;
        if (++this.depth > MAX_DEPTH) this.fail(`exceeded maximum template depth (${MAX_DEPTH})`);
        const saved = { vars: this.vars, name: this.name };
        this.vars = [{ name: '$', value: v }];
        this.name = node.name;
        this.walkList(v, list);
        this.vars = saved.vars;
        this.name = saved.name;
        this.depth--;
        return;
      }
    }
  }

  walkRange(dot: unknown, node: Extract<Node, { pipe: Pipe; list: Node[] }>): void {
    this.at = node;
    const mark = this.vars.length;
    const val = this.evalPipeline(dot, node.pipe);
    const inner = this.vars.length;
    const decl = node.pipe.decl;
    let n = 0;
    const one = (key: unknown, elem: unknown): boolean => {
      n++;
      // the pipeline declared $elem (one variable) or $key, $elem (two); each iteration rebinds them
      if (decl.length === 1) this.setTop(decl[0]!, elem, node.pipe.isAssign, inner, 1);
      if (decl.length === 2) {
        this.setTop(decl[1]!, elem, node.pipe.isAssign, inner, 1);
        this.setTop(decl[0]!, key, node.pipe.isAssign, inner, 2);
      }
      try {
        this.walkList(elem, node.list);
      } catch (e) {
        if (e instanceof Break) return false;
        if (!(e instanceof Continue)) throw e;
      } finally {
        this.vars.length = inner;
      }
      return true;
    };
    if (Array.isArray(val)) {
      for (let i = 0; i < val.length; i++) if (!one(i, val[i])) break;
    } else if (isObj(val)) {
      for (const k of mapKeys(val)) if (!one(k, val[k])) break;
    } else if (typeof val === 'number' && Number.isInteger(val)) {
      // Go 1.22: range over an int counts 0..n-1
      if (decl.length > 1) this.fail(`can't use ${val} to iterate over more than one variable`);
      for (let i = 0; i < val; i++) if (!one(i, i)) break;
    } else if (!isNil(val)) {
      this.at = node;
      this.fail(`range can't iterate over ${fmtV(val)}`);
    }
    if (n === 0 && node.elseList) this.walkList(dot, node.elseList);
    this.vars.length = mark;
  }

  /** Rebinds a range variable: the declared ones sit on top of the stack; `=` assigns an outer one. */
  setTop(name: string, value: unknown, isAssign: boolean, top: number, fromTop: number): void {
    if (isAssign) this.setVar(name, value);
    else this.vars[top - fromTop] = { name, value };
  }

  evalPipeline(dot: unknown, pipe: Pipe): unknown {
    this.at = pipe;
    let value: unknown = MISSING;
    for (const cmd of pipe.cmds) {
      value = this.evalCommand(dot, cmd, value);
      // Go unwraps interface values after each stage: a nil interface becomes the invalid value
      if (value === null) value = undefined;
    }
    for (const d of pipe.decl) {
      if (pipe.isAssign) this.setVar(d, value);
      else this.vars.push({ name: d, value });
    }
    return value;
  }

  evalCommand(dot: unknown, cmd: Cmd, final: Final): unknown {
    const first = cmd.args[0]!;
    switch (first.k) {
      case 'field':
        this.at = first;
        return this.evalFieldChain(dot, dot, first.ident, cmd.args, final);
      case 'chain':
        return this.evalChain(dot, first, cmd.args, final);
      case 'ident':
        return this.evalCall(dot, first.name, cmd, cmd.args, final);
      case 'var':
        return this.evalVariable(dot, first, cmd.args, final);
      case 'pipe':
        this.notAFunction(cmd, final);
        return this.evalPipeline(dot, first.pipe);
    }
    this.at = first;
    this.notAFunction(cmd, final);
    switch (first.k) {
      case 'dot':
        return dot;
      case 'lit':
        return first.value;
      case 'nil':
        this.fail('nil is not a command');
    }
  }

  notAFunction(cmd: Cmd, final: Final): void {
    if (cmd.args.length > 1 || final !== MISSING) this.fail(`can't give argument to non-function ${cmd.args[0]!.src}`);
  }

  evalVariable(dot: unknown, v: Arg & { k: 'var' }, args: Arg[], final: Final): unknown {
    this.at = v;
    const value = this.lookup(v.name);
    if (v.ident.length === 0) {
      if (args.length > 1 || final !== MISSING) this.fail(`can't give argument to non-function ${v.src}`);
      return value;
    }
    return this.evalFieldChain(dot, value, v.ident, args, final);
  }

  evalChain(dot: unknown, chain: Arg & { k: 'chain' }, args: Arg[], final: Final): unknown {
    this.at = chain;
    if (chain.node.k === 'nil') this.fail(`indirection through explicit nil in ${chain.src}`);
    let base = this.evalArg(dot, chain.node);
    if (base === null) base = undefined; // the parenthesized pipeline's value was unwrapped too
    this.at = chain;
    return this.evalFieldChain(dot, base, chain.ident, args, final);
  }

  evalFieldChain(dot: unknown, receiver: unknown, ident: string[], args: Arg[], final: Final): unknown {
    const at = this.at;
    for (let i = 0; i < ident.length - 1; i++) receiver = this.evalField(dot, ident[i]!, [], MISSING, receiver, at);
    return this.evalField(dot, ident[ident.length - 1]!, args, final, receiver, at);
  }

  evalField(dot: unknown, name: string, args: Arg[], final: Final, receiver: unknown, at: Loc): unknown {
    if (receiver === undefined) return undefined; // an invalid value: its fields are invalid too
    this.at = at;
    if (receiver === null) this.fail(`nil pointer evaluating interface {}.${name}`);
    const hasArgs = args.length > 1 || final !== MISSING;
    if (isObj(receiver)) {
      const v = Object.hasOwn(receiver, name) ? receiver[name] : undefined;
      if (typeof v === 'function') {
        // a method (docker's formatter contexts have some, e.g. .Label "key")
        const argv = args.slice(1).map((a) => this.evalArg(dot, a));
        if (final !== MISSING) argv.push(final);
        this.at = at;
        try {
          return v.apply(receiver, argv);
        } catch (e) {
          this.fail(`error calling ${name}: ${(e as Error).message}`);
        }
      }
      if (hasArgs) this.fail(`${name} is not a method but has arguments`);
      return v;
    }
    this.fail(`can't evaluate field ${name} in type ${goType(receiver)}`);
  }

  /** An argument of a function or method call. */
  evalArg(dot: unknown, a: Arg): unknown {
    this.at = a;
    switch (a.k) {
      case 'dot':
        return dot;
      case 'nil':
        return null;
      case 'lit':
        return a.value;
      case 'field':
        return this.evalFieldChain(dot, dot, a.ident, [a], MISSING);
      case 'var':
        return this.evalVariable(dot, a, [a], MISSING);
      case 'pipe':
        return this.evalPipeline(dot, a.pipe);
      case 'chain':
        return this.evalChain(dot, a, [a], MISSING);
      case 'ident':
        return this.evalCall(dot, a.name, a, [a], MISSING);
    }
  }

  checkParam(v: unknown, t: ParamType): unknown {
    switch (t) {
      case 'any':
        return v === undefined ? null : v; // an invalid value passed as interface{} is nil
      case 'string':
        if (v === undefined) this.fail('invalid value; expected string');
        if (typeof v !== 'string') this.fail(`wrong type for value; expected string; got ${goType(v)}`);
        return v;
      case 'int':
        if (v === undefined) this.fail('invalid value; expected int');
        if (typeof v !== 'number' || !Number.isInteger(v)) this.fail(`wrong type for value; expected int; got ${goType(v)}`);
        return v;
      case 'list':
        if (isNil(v)) return [];
        if (!Array.isArray(v)) this.fail(`wrong type for value; expected []string; got ${goType(v)}`);
        return v;
    }
  }

  evalCall(dot: unknown, name: string, node: Loc, args: Arg[], final: Final): unknown {
    const at = node;
    this.at = at;
    const argNodes = args.slice(1);
    const nGiven = argNodes.length + (final !== MISSING ? 1 : 0);
    if (name === 'and' || name === 'or') {
      // short-circuit: the first argument that decides, else the last one
      if (nGiven < 1) this.fail(`wrong number of args for ${name}: want at least 1 got 0`);
      let v: unknown;
      for (const a of argNodes) {
        v = this.checkParam(this.evalArg(dot, a), 'any');
        if (truth(v) === (name === 'or')) return v;
      }
      if (final !== MISSING) v = this.checkParam(final, 'any');
      return v;
    }
    const f = this.funcs[name]!;
    const np = f.params.length;
    if (f.variadic ? nGiven < np - 1 : nGiven !== np) {
      this.fail(`wrong number of args for ${name}: want ${f.variadic ? 'at least ' : ''}${f.variadic ? np - 1 : np} got ${nGiven}`);
    }
    const argv: unknown[] = [];
    const typeAt = (i: number): ParamType => f.params[Math.min(i, np - 1)]!;
    argNodes.forEach((a, i) => {
      const v = this.evalArg(dot, a);
      this.at = a;
      argv.push(this.checkParam(v, typeAt(i)));
    });
    this.at = at;
    if (final !== MISSING) argv.push(this.checkParam(final, typeAt(argv.length)));
    try {
      return f.fn(...argv);
    } catch (e) {
      this.at = at;
      this.fail(`error calling ${name}: ${(e as Error).message}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------------

// The CLI renders the same template once per row: keep the parse trees of recent templates.
const cache = new Map<string, Parsed>();

function parse(tpl: string): Parsed {
  let p = cache.get(tpl);
  if (!p) {
    p = new Parser(tpl).parse();
    if (cache.size >= 64) cache.delete(cache.keys().next().value!);
    cache.set(tpl, p);
  }
  return p;
}

/** Parses `tpl` only (throws Go's `template: :LINE: ...` message on a syntax error). */
export function checkTemplate(tpl: string): void {
  parse(tpl);
}

// docker's HeaderFunctions (cli/templates): a table header keeps the column names as they are.
const same = (v: string) => v;
const HEADER_FUNCS: Record<string, Func> = {
  ...FUNCS,
  json: { params: ['string'], fn: same },
  split: { params: ['string', 'string'], fn: same },
  join: { params: ['string', 'string'], fn: same },
  title: { params: ['string'], fn: same },
  lower: { params: ['string'], fn: same },
  upper: { params: ['string'], fn: same },
  truncate: { params: ['string', 'int'], fn: same },
};

/** Executes the Go template `tpl` with `data` as dot, the way the docker CLI's --format does. */
export function renderTemplate(tpl: string, data: unknown): string {
  const p = parse(tpl);
  const ex = new Exec(tpl, p.defs);
  const dot = data === null ? undefined : data;
  ex.vars.push({ name: '$', value: dot });
  ex.walkList(dot, p.root);
  return ex.out.join('');
}

/**
 * A table's header row, as the docker CLI makes it: the template executed with the column names as dot and
 * the header functions; an execution error ends the header where it happened (docker ignores that error).
 */
export function renderHeader(tpl: string, names: Record<string, unknown>): string {
  const p = parse(tpl);
  const ex = new Exec(tpl, p.defs);
  ex.funcs = HEADER_FUNCS;
  ex.vars.push({ name: '$', value: names });
  try {
    ex.walkList(names, p.root);
  } catch { /* partial header */ }
  return ex.out.join('');
}
