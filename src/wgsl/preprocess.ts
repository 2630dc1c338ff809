/**
 * A small WGSL preprocessor: `#define NAME value`, `#if EXPR`, `#ifdef NAME`, `#ifndef NAME`, `#elif EXPR`,
 * `#else`, `#endif`, and `#include "file.wgsl"`. Defines given by the caller and by `#define` are substituted
 * as whole identifiers in the code. `#if` expressions take integers, define names, `defined(NAME)`, `!`, `&&`,
 * `||`, comparisons, `+ - * / %` and parentheses. Errors name the file and line.
 */

/** A define value: numbers and booleans become `1`/`0` or their decimal text. */
export type DefineValue = string | number | boolean;

/** Raised for malformed directives, unknown includes, and unbalanced `#if` blocks. */
export class WgslPreprocessError extends Error {
  override name = 'WgslPreprocessError';
}

function defineText(v: DefineValue): string {
  if (typeof v === 'boolean') return v ? '1' : '0';
  return String(v);
}

type Tok = { t: 'num'; v: number } | { t: 'id'; v: string } | { t: 'op'; v: string };

function tokenize(expr: string, where: string): Tok[] {
  const out: Tok[] = [];
  const re = /\s*(?:(\d+(?:\.\d+)?[uif]?)|([A-Za-z_]\w*)|(&&|\|\||==|!=|<=|>=|[!<>()+\-*/%]))/y;
  let pos = 0;
  while (pos < expr.length) {
    if (/^\s*$/.test(expr.slice(pos))) break;
    re.lastIndex = pos;
    const m = re.exec(expr);
    if (!m) throw new WgslPreprocessError(`${where}: cannot parse '${expr.slice(pos)}' in #if expression`);
    pos = re.lastIndex;
    if (m[1] !== undefined) out.push({ t: 'num', v: parseFloat(m[1]) });
    else if (m[2] !== undefined) out.push({ t: 'id', v: m[2] });
    else out.push({ t: 'op', v: m[3]! });
  }
  return out;
}

function evalExpr(expr: string, defines: Map<string, string>, where: string): number {
  const toks = tokenize(expr, where);
  let i = 0;
  const peek = () => toks[i];
  const eat = (v: string) => {
    const t = toks[i];
    if (!t || t.t !== 'op' || t.v !== v) throw new WgslPreprocessError(`${where}: expected '${v}' in #if ${expr}`);
    i++;
  };
  const value = (name: string, depth: number): number => {
    const d = defines.get(name);
    if (d === undefined || d === '') return 0;
    if (depth > 16) throw new WgslPreprocessError(`${where}: define ${name} is recursive`);
    if (/^[A-Za-z_]\w*$/.test(d)) return value(d, depth + 1);
    const n = parseFloat(d);
    if (Number.isNaN(n)) return evalExpr(d, defines, where);
    return n;
  };
  const primary = (): number => {
    const t = peek();
    if (!t) throw new WgslPreprocessError(`${where}: unexpected end of #if ${expr}`);
    i++;
    if (t.t === 'num') return t.v;
    if (t.t === 'id') {
      if (t.v === 'defined') {
        const paren = peek()?.t === 'op' && peek()!.v === '(';
        if (paren) eat('(');
        const id = toks[i++];
        if (!id || id.t !== 'id') throw new WgslPreprocessError(`${where}: defined() needs a name`);
        if (paren) eat(')');
        return defines.has(id.v) ? 1 : 0;
      }
      return value(t.v, 0);
    }
    if (t.v === '(') {
      const v = or();
      eat(')');
      return v;
    }
    if (t.v === '!') return primary() ? 0 : 1;
    if (t.v === '-') return -primary();
    throw new WgslPreprocessError(`${where}: unexpected '${t.v}' in #if ${expr}`);
  };
  const binary = (ops: string[], next: () => number, apply: (op: string, a: number, b: number) => number) => (): number => {
    let a = next();
    for (;;) {
      const t = peek();
      if (!t || t.t !== 'op' || !ops.includes(t.v)) return a;
      i++;
      a = apply(t.v, a, next());
    }
  };
  const mul = binary(['*', '/', '%'], primary, (op, a, b) => (op === '*' ? a * b : op === '/' ? Math.trunc(a / b) : a % b));
  const add = binary(['+', '-'], mul, (op, a, b) => (op === '+' ? a + b : a - b));
  const cmp = binary(['<', '>', '<=', '>='], add, (op, a, b) => +(op === '<' ? a < b : op === '>' ? a > b : op === '<=' ? a <= b : a >= b));
  const eq = binary(['==', '!='], cmp, (op, a, b) => +(op === '==' ? a === b : a !== b));
  const and = binary(['&&'], eq, (_op, a, b) => +(!!a && !!b));
  const or = binary(['||'], and, (_op, a, b) => +(!!a || !!b));
  const v = or();
  if (i !== toks.length) throw new WgslPreprocessError(`${where}: trailing tokens in #if ${expr}`);
  return v;
}

/**
 * Expands directives in `source`.
 * @param source WGSL text with directives.
 * @param defines caller defines (substituted as identifiers and visible to `#if`).
 * @param resolveInclude returns the text of an included file, or undefined when it does not exist.
 * @param fileName used in error messages.
 */
export function preprocessWgsl(
  source: string,
  defines: Record<string, DefineValue>,
  resolveInclude: (name: string) => string | undefined,
  fileName = '<wgsl>',
): string {
  const defs = new Map<string, string>();
  for (const [k, v] of Object.entries(defines)) defs.set(k, defineText(v));
  const out: string[] = [];
  const expand = (text: string, file: string, depth: number) => {
    if (depth > 8) throw new WgslPreprocessError(`${file}: #include nested too deeply`);
    // Stack entries: [active, anyBranchTaken, parentActive]
    const stack: Array<{ active: boolean; taken: boolean; parent: boolean; line: number }> = [];
    const lines = text.split('\n');
    const active = () => (stack.length ? stack[stack.length - 1]!.active : true);
    for (let ln = 0; ln < lines.length; ln++) {
      const line = lines[ln]!;
      const where = `${file}:${ln + 1}`;
      const m = /^\s*#\s*(\w+)\s*(.*?)\s*$/.exec(line);
      if (!m) {
        if (active()) out.push(substitute(line, defs));
        continue;
      }
      const [, dir, rest] = m as unknown as [string, string, string];
      switch (dir) {
        case 'if':
        case 'ifdef':
        case 'ifndef': {
          const parent = active();
          let cond = false;
          if (parent) {
            if (dir === 'if') cond = evalExpr(rest, defs, where) !== 0;
            else cond = defs.has(rest) === (dir === 'ifdef');
          }
          stack.push({ active: parent && cond, taken: cond, parent, line: ln + 1 });
          break;
        }
        case 'elif': {
          const top = stack[stack.length - 1];
          if (!top) throw new WgslPreprocessError(`${where}: #elif without #if`);
          if (top.taken || !top.parent) top.active = false;
          else {
            top.active = evalExpr(rest, defs, where) !== 0;
            top.taken = top.active;
          }
          break;
        }
        case 'else': {
          const top = stack[stack.length - 1];
          if (!top) throw new WgslPreprocessError(`${where}: #else without #if`);
          top.active = top.parent && !top.taken;
          top.taken = true;
          break;
        }
        case 'endif':
          if (!stack.pop()) throw new WgslPreprocessError(`${where}: #endif without #if`);
          break;
        case 'define': {
          if (!active()) break;
          const dm = /^([A-Za-z_]\w*)\s*(.*)$/.exec(rest);
          if (!dm) throw new WgslPreprocessError(`${where}: malformed #define`);
          defs.set(dm[1]!, dm[2] ?? '');
          break;
        }
        case 'undef':
          if (active()) defs.delete(rest);
          break;
        case 'include': {
          if (!active()) break;
          const im = /^"([^"]+)"$/.exec(rest);
          if (!im) throw new WgslPreprocessError(`${where}: #include needs a "file" name`);
          const inc = resolveInclude(im[1]!);
          if (inc === undefined) throw new WgslPreprocessError(`${where}: #include "${im[1]}" not found`);
          expand(inc, im[1]!, depth + 1);
          break;
        }
        case 'error':
          if (active()) throw new WgslPreprocessError(`${where}: #error ${rest}`);
          break;
        default:
          throw new WgslPreprocessError(`${where}: unknown directive #${dir}`);
      }
    }
    if (stack.length) throw new WgslPreprocessError(`${file}:${stack[stack.length - 1]!.line}: #if without #endif`);
  };
  expand(source, fileName, 0);
  return out.join('\n');
}

function substitute(line: string, defs: Map<string, string>): string {
  if (defs.size === 0) return line;
  const commentAt = line.indexOf('//');
  const code = commentAt >= 0 ? line.slice(0, commentAt) : line;
  const tail = commentAt >= 0 ? line.slice(commentAt) : '';
  const replaced = code.replace(/[A-Za-z_]\w*/g, (id) => {
    let v = defs.get(id);
    let guard = 0;
    while (v !== undefined && /^[A-Za-z_]\w*$/.test(v) && defs.has(v) && guard++ < 16) v = defs.get(v);
    return v !== undefined && v !== '' ? v : id;
  });
  return replaced + tail;
}
