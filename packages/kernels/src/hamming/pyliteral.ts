/**
 * A parser for the Python literals that NumPy's `.npy` header holds, written to accept exactly what
 * `ast.literal_eval` (Python 3.11, as numpy 2.x calls it in `_read_array_header`) accepts, and to refuse
 * everything else. Python's rules that matter here, each checked against numpy:
 *
 * - The text is tokenised as Python source (`literal_eval` strips leading spaces and tabs first): '\r\n' and
 *   '\r' are newlines; a NUL anywhere is an error; comments run to the end of the line; newlines inside
 *   brackets are whitespace; at bracket depth 0 a line may not be indented, and only blank lines may follow
 *   the expression; brackets nest at most 200 deep.
 * - Literals: str and bytes (prefixes r, u, b, br, rb in any case; f-strings are not literals), adjacent
 *   strings concatenated, escapes decoded; ints in every base with '_' separators; floats and complex
 *   numbers; True, False, None, `...`; tuples, lists, sets and dicts; unary + and - on a number; a binary
 *   + or - only between a number and a complex number (refused here: it can only make a complex number,
 *   which no header field takes).
 * - Dict keys repeat: the last value wins.
 * - NumPy retries a header of format 1.0 or 2.0 that does not parse with every Python 2 long suffix removed
 *   (a NAME token `L` after a number, as `tokenize` splits `3L`): `py2Longs` does that.
 *
 * Deliberate difference: a `\N{...}` escape (a character by Unicode name) is refused, as no name table is
 * carried. A refused construct throws a PyLiteralError; it never returns a partial value.
 */

export type PyValue =
  | { t: 'str'; v: string }
  | { t: 'int'; v: bigint }
  | { t: 'bool'; v: boolean }
  | { t: 'none' }
  /** A value no header field takes: float, complex, bytes, Ellipsis, a set. */
  | { t: 'other'; what: string }
  | { t: 'tuple'; items: PyValue[] }
  | { t: 'list'; items: PyValue[] }
  | { t: 'dict'; entries: [PyValue, PyValue][] };

export class PyLiteralError extends Error {}

/** The deepest bracket nesting Python's tokenizer allows (MAXLEVEL). */
const MAX_DEPTH = 200;

type Token =
  | { k: 'op'; v: string; at: number }
  | { k: 'num'; v: PyValue; at: number }
  | { k: 'str'; v: string; bytes: boolean; at: number }
  | { k: 'name'; v: string; at: number }
  | { k: 'newline'; at: number }
  | { k: 'end'; at: number };

// The number patterns of Python's tokenize module (3.11), tried in its order: imaginary, float, int.
const DIGITS = '[0-9](?:_?[0-9])*';
const EXPONENT = `[eE][-+]?${DIGITS}`;
const POINTFLOAT = `(?:${DIGITS}\\.(?:${DIGITS})?|\\.${DIGITS})(?:${EXPONENT})?`;
const EXPFLOAT = `${DIGITS}${EXPONENT}`;
const FLOAT = `(?:${POINTFLOAT}|${EXPFLOAT})`;
const IMAG = new RegExp(`(?:${DIGITS}[jJ]|${FLOAT}[jJ])`, 'y');
const FLOAT_RE = new RegExp(FLOAT, 'y');
const INT_RE = /0[xX](?:_?[0-9a-fA-F])+|0[bB](?:_?[01])+|0[oO](?:_?[0-7])+|0(?:_?0)*|[1-9](?:_?[0-9])*/y;
const NAME_RE = /[A-Za-z_][A-Za-z0-9_]*/y;
const STRING_PREFIXES = new Set(['', 'r', 'u', 'b', 'br', 'rb', 'f', 'fr', 'rf']);

function intValue(text: string): bigint {
  const t = text.replace(/_/g, '');
  if (/^0[xXbBoO]/.test(t)) return BigInt(`0${t[1].toLowerCase()}${t.slice(2)}`);
  return BigInt(t);
}

function tokenize(source: string, py2Longs: boolean): Token[] {
  if (source.includes('\0')) throw new PyLiteralError('the header contains a NUL character');
  const s = source.replace(/\r\n?/g, '\n').replace(/^[ \t]+/, '');
  const tokens: Token[] = [];
  const brackets: string[] = [];
  let i = 0;
  let atLineStart = true;
  let lineHasToken = false;
  let afterContinuation = false; // a line-start continuation: the next line must start with a token
  let lastWasNumber = false; // for py2Longs, as numpy's _filter_header tracks it
  const fail = (what: string, at: number): never => {
    throw new PyLiteralError(`${what} at character ${at}`);
  };
  const push = (t: Token) => {
    if (t.k === 'name' && t.v === 'L' && py2Longs && lastWasNumber) return; // a Python 2 long suffix
    lastWasNumber = t.k === 'num';
    tokens.push(t);
    lineHasToken = true;
  };
  while (true) {
    if (atLineStart && brackets.length === 0) {
      let col = 0;
      while (i < s.length && (s[i] === ' ' || s[i] === '\t' || s[i] === '\f')) {
        col = s[i] === ' ' ? col + 1 : s[i] === '\t' ? (Math.floor(col / 8) + 1) * 8 : 0;
        i++;
      }
      if (i >= s.length) {
        if (afterContinuation) fail('end of header after a line continuation', i);
        break;
      }
      const c = s[i];
      if (c === '\n' || c === '#') {
        if (afterContinuation) fail('a blank line after a line continuation', i);
        while (i < s.length && s[i] !== '\n') i++;
        i++;
        lastWasNumber = false;
        continue;
      }
      if (c === '\\') {
        if (s[i + 1] !== '\n') fail('a character after a line continuation', i);
        i += 2;
        afterContinuation = true;
        continue;
      }
      if (col !== 0) fail('an unexpected indent', i);
      atLineStart = false;
      afterContinuation = false;
      lineHasToken = false;
    }
    if (i >= s.length) break;
    const c = s[i];
    if (c === ' ' || c === '\t' || c === '\f') {
      i++;
      continue;
    }
    if (c === '\n') {
      i++;
      lastWasNumber = false;
      if (brackets.length === 0) {
        if (lineHasToken) tokens.push({ k: 'newline', at: i - 1 });
        atLineStart = true;
      }
      continue;
    }
    if (c === '#') {
      while (i < s.length && s[i] !== '\n') i++;
      lastWasNumber = false;
      continue;
    }
    if (c === '\\') {
      // A continuation joins the next line to this one; the input may not end right after it.
      if (s[i + 1] !== '\n') fail('a character after a line continuation', i);
      i += 2;
      if (i >= s.length) fail('end of header after a line continuation', i);
      continue;
    }
    const at = i;
    if (/[A-Za-z_]/.test(c)) {
      NAME_RE.lastIndex = i;
      const name = (NAME_RE.exec(s) as RegExpExecArray)[0];
      const q = s[i + name.length];
      if ((q === "'" || q === '"') && STRING_PREFIXES.has(name.toLowerCase())) {
        i = readString(s, i + name.length, name.toLowerCase(), push, at);
        continue;
      }
      i += name.length;
      push({ k: 'name', v: name, at });
      continue;
    }
    if (c === "'" || c === '"') {
      i = readString(s, i, '', push, at);
      continue;
    }
    if (/[0-9]/.test(c) || (c === '.' && /[0-9]/.test(s[i + 1] ?? ''))) {
      let m: RegExpExecArray | null = null;
      for (const [re, kind] of [
        [IMAG, 'complex'],
        [FLOAT_RE, 'float'],
        [INT_RE, 'int'],
      ] as const) {
        re.lastIndex = i;
        m = re.exec(s);
        if (m) {
          push({
            k: 'num',
            v: kind === 'int' ? { t: 'int', v: intValue(m[0]) } : { t: 'other', what: kind },
            at,
          });
          i += m[0].length;
          break;
        }
      }
      if (!m) fail('a malformed number', i); // unreachable: a digit always matches INT_RE's 0 or 1-9
      continue;
    }
    if (c === '.' && s.startsWith('...', i)) {
      push({ k: 'op', v: '...', at });
      i += 3;
      continue;
    }
    if ('([{'.includes(c)) {
      if (brackets.length >= MAX_DEPTH) fail(`brackets nested more than ${MAX_DEPTH} deep`, i);
      brackets.push(c);
      push({ k: 'op', v: c, at });
      i++;
      continue;
    }
    if (')]}'.includes(c)) {
      const open = brackets.pop();
      if (open === undefined || '([{'.indexOf(open) !== ')]}'.indexOf(c)) fail(`an unmatched '${c}'`, i);
      push({ k: 'op', v: c, at });
      i++;
      continue;
    }
    if (',:+-*/%@&|^~<>=!.;'.includes(c)) {
      push({ k: 'op', v: c, at });
      i++;
      continue;
    }
    fail(`the character ${JSON.stringify(c)} (U+${c.codePointAt(0)?.toString(16).padStart(4, '0')})`, i);
  }
  if (brackets.length > 0) fail(`an unclosed '${brackets[brackets.length - 1]}'`, s.length);
  if (lineHasToken && !atLineStart) tokens.push({ k: 'newline', at: s.length });
  tokens.push({ k: 'end', at: s.length });
  return tokens;
}

/** Reads a string literal whose quote is at s[i]; returns the index after it. */
function readString(s: string, i: number, prefix: string, push: (t: Token) => void, at: number): number {
  const quote = s[i];
  const triple = s.startsWith(quote.repeat(3), i);
  const delim = triple ? quote.repeat(3) : quote;
  let j = i + delim.length;
  const start = j;
  while (true) {
    if (j >= s.length) throw new PyLiteralError(`an unterminated string starting at character ${at}`);
    const c = s[j];
    if (c === '\\') {
      j += 2;
      continue;
    }
    if (!triple && c === '\n') throw new PyLiteralError(`an unterminated string starting at character ${at}`);
    if (s.startsWith(delim, j)) break;
    j++;
  }
  const body = s.slice(start, j);
  if (prefix.includes('f')) throw new PyLiteralError(`an f-string (not a literal) at character ${at}`);
  const bytes = prefix.includes('b');
  const raw = prefix.includes('r');
  if (bytes && [...body].some((c) => c.charCodeAt(0) > 0x7f))
    throw new PyLiteralError(`a bytes literal with non-ASCII characters at character ${at}`);
  push({ k: 'str', v: raw ? body : decodeEscapes(body, bytes, at), bytes, at });
  return j + delim.length;
}

function decodeEscapes(body: string, bytes: boolean, at: number): string {
  let out = '';
  for (let j = 0; j < body.length; j++) {
    const c = body[j];
    if (c !== '\\') {
      out += c;
      continue;
    }
    const e = body[++j];
    const simple: Record<string, string> = {
      '\n': '',
      '\\': '\\',
      "'": "'",
      '"': '"',
      a: '\x07',
      b: '\b',
      f: '\f',
      n: '\n',
      r: '\r',
      t: '\t',
      v: '\v',
    };
    if (e in simple) {
      out += simple[e];
    } else if (/[0-7]/.test(e)) {
      let k = j;
      while (k < j + 3 && /[0-7]/.test(body[k] ?? '')) k++;
      out += String.fromCodePoint(Number.parseInt(body.slice(j, k), 8));
      j = k - 1;
    } else if (e === 'x' || (!bytes && (e === 'u' || e === 'U'))) {
      const n = e === 'x' ? 2 : e === 'u' ? 4 : 8;
      const hex = body.slice(j + 1, j + 1 + n);
      if (!new RegExp(`^[0-9a-fA-F]{${n}}$`).test(hex))
        throw new PyLiteralError(`a truncated \\${e} escape in the string at character ${at}`);
      const code = Number.parseInt(hex, 16);
      if (code > 0x10ffff) throw new PyLiteralError(`an illegal Unicode character in the string at ${at}`);
      out += String.fromCodePoint(code);
      j += n;
    } else if (!bytes && e === 'N') {
      throw new PyLiteralError(`a \\N{...} escape (not supported) in the string at character ${at}`);
    } else {
      out += `\\${e}`; // Python keeps unknown escapes as they are
    }
  }
  return out;
}

class Parser {
  private p = 0;
  constructor(private readonly tokens: Token[]) {}

  private peek(): Token {
    return this.tokens[this.p];
  }
  private isOp(v: string): boolean {
    const t = this.peek();
    return t.k === 'op' && t.v === v;
  }
  private expectOp(v: string): void {
    if (!this.isOp(v)) this.unexpected(`'${v}'`);
    this.p++;
  }
  private unexpected(expected: string): never {
    const t = this.peek();
    const found =
      t.k === 'end'
        ? 'the end of the header'
        : t.k === 'newline'
          ? 'a line break'
          : t.k === 'str'
            ? 'a string'
            : t.k === 'num'
              ? 'a number'
              : `'${t.v}'`;
    throw new PyLiteralError(`expected ${expected}, found ${found} at character ${t.at}`);
  }

  /** The whole input: one expression (a bare tuple allowed), then only line breaks. */
  parseAll(): PyValue {
    const v = this.parseExpressions(['newline', 'end']);
    while (this.peek().k === 'newline') this.p++;
    if (this.peek().k !== 'end') this.unexpected('the end of the header');
    return v;
  }

  /** expr (',' expr)* [','], a tuple when there is a comma; stops before a closing token. */
  private parseExpressions(closers: string[]): PyValue {
    const first = this.parseSingle().value;
    if (!this.isOp(',')) return first;
    const items = [first];
    while (this.isOp(',')) {
      this.p++;
      if (this.atCloser(closers)) break;
      items.push(this.parseSingle().value);
    }
    return { t: 'tuple', items };
  }

  private atCloser(closers: string[]): boolean {
    const t = this.peek();
    return closers.includes(t.k === 'op' ? t.v : t.k);
  }

  /** One expression: an atom or a signed number; nothing may follow it but a separator or a closer. */
  private parseSingle(): { value: PyValue; constant: boolean } {
    let result: { value: PyValue; constant: boolean };
    if (this.isOp('+') || this.isOp('-')) {
      const negative = this.isOp('-');
      this.p++;
      const operand = this.parseAtom();
      const v = operand.value;
      if (
        !operand.constant ||
        !(v.t === 'int' || (v.t === 'other' && (v.what === 'float' || v.what === 'complex')))
      )
        throw new PyLiteralError('a sign on something other than a number (not a literal)');
      result = { value: v.t === 'int' && negative ? { t: 'int', v: -v.v } : v, constant: false };
    } else {
      result = this.parseAtom();
    }
    const t = this.peek();
    const ok =
      t.k === 'newline' || t.k === 'end' || (t.k === 'op' && [',', ':', ')', ']', '}'].includes(t.v));
    if (!ok) this.unexpected("',', ':' or a closing bracket (an operator, call or name is not a literal)");
    return result;
  }

  private parseAtom(): { value: PyValue; constant: boolean } {
    const t = this.peek();
    if (t.k === 'num') {
      this.p++;
      return { value: t.v, constant: true };
    }
    if (t.k === 'str') {
      let text = '';
      const bytes = t.bytes;
      while (this.peek().k === 'str') {
        const s = this.peek() as Extract<Token, { k: 'str' }>;
        if (s.bytes !== bytes) throw new PyLiteralError(`bytes and str literals mixed at character ${s.at}`);
        text += s.v;
        this.p++;
      }
      return { value: bytes ? { t: 'other', what: 'bytes' } : { t: 'str', v: text }, constant: true };
    }
    if (t.k === 'name') {
      this.p++;
      if (t.v === 'True' || t.v === 'False')
        return { value: { t: 'bool', v: t.v === 'True' }, constant: true };
      if (t.v === 'None') return { value: { t: 'none' }, constant: true };
      throw new PyLiteralError(`the name '${t.v}' (not a literal) at character ${t.at}`);
    }
    if (t.k === 'op') {
      if (t.v === '...') {
        this.p++;
        return { value: { t: 'other', what: 'Ellipsis' }, constant: true };
      }
      if (t.v === '(') {
        this.p++;
        if (this.isOp(')')) {
          this.p++;
          return { value: { t: 'tuple', items: [] }, constant: false };
        }
        const first = this.parseSingle();
        if (this.isOp(')')) {
          this.p++;
          return first; // parentheses group: (3) is the constant 3
        }
        const items = [first.value];
        while (this.isOp(',')) {
          this.p++;
          if (this.isOp(')')) break;
          items.push(this.parseSingle().value);
        }
        this.expectOp(')');
        return { value: { t: 'tuple', items }, constant: false };
      }
      if (t.v === '[') {
        this.p++;
        const items = this.parseList(']');
        return { value: { t: 'list', items }, constant: false };
      }
      if (t.v === '{') {
        this.p++;
        if (this.isOp('}')) {
          this.p++;
          return { value: { t: 'dict', entries: [] }, constant: false };
        }
        const first = this.parseSingle().value;
        if (!this.isOp(':')) {
          // A set: read to its end, so that what follows is checked too.
          if (this.isOp(',')) {
            this.p++;
            this.parseList('}');
          } else {
            this.expectOp('}');
          }
          return { value: { t: 'other', what: 'set' }, constant: false };
        }
        const entries: [PyValue, PyValue][] = [];
        let key = first;
        while (true) {
          this.expectOp(':');
          entries.push([key, this.parseSingle().value]);
          if (this.isOp('}')) break;
          this.expectOp(',');
          if (this.isOp('}')) break;
          key = this.parseSingle().value;
        }
        this.expectOp('}');
        return { value: { t: 'dict', entries }, constant: false };
      }
    }
    return this.unexpected('a literal');
  }

  /** Items up to `close` (consumed), with an optional trailing comma. */
  private parseList(close: string): PyValue[] {
    const items: PyValue[] = [];
    while (!this.isOp(close)) {
      items.push(this.parseSingle().value);
      if (this.isOp(close)) break;
      this.expectOp(',');
    }
    this.expectOp(close);
    return items;
  }
}

/** Parses `text` as `ast.literal_eval` does (see the top of this file). */
export function parsePyLiteral(text: string, options: { py2Longs?: boolean } = {}): PyValue {
  return new Parser(tokenize(text, options.py2Longs ?? false)).parseAll();
}
