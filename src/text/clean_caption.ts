/**
 * DeepFloyd IF caption preprocessing: the behaviour of diffusers `IFPipeline._text_preprocessing`
 * and `_clean_caption` (spec §7.5), re-implemented from the rule list.
 *
 * Python `re` on str patterns is Unicode-aware: `\w` = letters, numbers and `_`; `\d` = decimal
 * digits (Nd); `\s` = the `str.isspace()` set; `\b` = boundary between `\w` and non-`\w`. JavaScript
 * `\w`/`\d`/`\b` are ASCII-only even with the `u` flag, so the patterns below spell these classes
 * out (and emulate `\b` with lookarounds).
 *
 * Two library calls are approximated (documented where they are implemented):
 * - `BeautifulSoup(caption, "html.parser").text`: a small tag stripper (start/end tags, comments,
 *   declarations, processing instructions) plus HTML entity decoding;
 * - `ftfy.fix_text`: the non-heuristic fixes only (HTML entities when the text has no "<", C1
 *   controls as Windows-1252, Latin ligatures, full-width characters, curly quotes, line breaks,
 *   terminal escapes, control characters, NFC). Mojibake repair (`fix_encoding`,
 *   `restore_byte_a0`, `replace_lossy_sequences`, `decode_inconsistent_utf8`) is NOT implemented.
 * - `html.unescape`: numeric references exactly as Python; named references from a table of the
 *   106 legacy (semicolon-optional) names plus ~190 common ones (not all 2231 HTML5 names).
 */

/** Characters Python's `str.isspace()` / `re` `\s` accept. */
const PY_WS =
  '\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const PY_WS_RE_START = new RegExp(`^[${PY_WS}]+`, 'u');
const PY_WS_RE_END = new RegExp(`[${PY_WS}]+$`, 'u');

/** Python `str.strip()` (Unicode whitespace; unlike JS `trim`, keeps U+FEFF and strips U+001C–001F, U+0085). */
export function pyStrip(s: string): string {
  return pyRstrip(pyLstrip(s));
}

export function pyLstrip(s: string): string {
  return s.replace(PY_WS_RE_START, '');
}

export function pyRstrip(s: string): string {
  return s.replace(PY_WS_RE_END, '');
}

// Unicode-aware building blocks for the Python patterns.
const W = '[\\p{L}\\p{N}_]'; // \w
const WC = '\\p{L}\\p{N}_'; // \w inside a class
const S = `[${PY_WS}]`; // \s
const NS = `[^${PY_WS}]`; // \S
const D = '\\p{Nd}'; // \d
const B = `(?:(?<=${W})(?!${W})|(?<!${W})(?=${W}))`; // \b

function re(src: string): RegExp {
  return new RegExp(
    src.replaceAll('\\b', B).replaceAll('\\d', D).replaceAll('\\s', S).replaceAll('\\S', NS),
    'gu',
  );
}

const URL_RES = ['https?:', 'www:'].map((scheme) =>
  re(
    `\\b((?:${scheme}(?:\\/{1,3}|[a-zA-Z0-9%])|[a-zA-Z0-9.\\-]+[.](?:com|co|ru|net|org|edu|gov|it)[${WC}/-]*\\b\\/?(?!@)))`,
  ),
);
const NICKNAME_RE = re(`@${W}+\\b`);
const CJK_RES = [
  '[\\u31c0-\\u31ef]+',
  '[\\u31f0-\\u31ff]+',
  '[\\u3200-\\u32ff]+',
  '[\\u3300-\\u33ff]+',
  '[\\u3400-\\u4dbf]+',
  '[\\u4dc0-\\u4dff]+',
  '[\\u4e00-\\u9fff]+',
].map((r) => new RegExp(r, 'gu'));
const DASH_RE =
  /[\u002D\u058A\u05BE\u1400\u1806\u2010-\u2015\u2E17\u2E1A\u2E3A\u2E3B\u2E40\u301C\u3030\u30A0\uFE31\uFE32\uFE58\uFE63\uFF0D]+/gu;
const BAD_PUNCT_RE = /[#®•©™&@·º½¾¿¡§~)(\][}{|\\/*]+/gu;

// ---------------------------------------------------------------------------------------------
// urllib.parse.unquote_plus

const utf8Replace = new TextDecoder('utf-8');

/** Python `urllib.parse.unquote_plus(s)` (UTF-8, errors="replace"). */
export function unquotePlus(s: string): string {
  const t = s.replaceAll('+', ' ');
  if (!t.includes('%')) return t;
  // Runs of ASCII are percent-decoded to bytes and decoded together; other text is kept as is.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: Python splits on the ASCII range
  return t.replace(/[\x00-\x7f]+/g, (run) => {
    if (!run.includes('%')) return run;
    const bytes: number[] = [];
    for (let i = 0; i < run.length; i++) {
      const c = run.charCodeAt(i);
      if (c === 0x25 && i + 2 < run.length && /^[0-9a-fA-F]{2}$/.test(run.slice(i + 1, i + 3))) {
        bytes.push(Number.parseInt(run.slice(i + 1, i + 3), 16));
        i += 2;
      } else bytes.push(c);
    }
    return utf8Replace.decode(Uint8Array.from(bytes));
  });
}

// ---------------------------------------------------------------------------------------------
// html.unescape

const ENTITY_TABLE = [
  'AElig=c6 AMP=26 Aacute=c1 Acirc=c2 Agrave=c0 Aring=c5 Atilde=c3 Auml=c4 COPY=a9 Ccedil=c7 ETH=d0',
  'Eacute=c9 Ecirc=ca Egrave=c8 Euml=cb GT=3e Iacute=cd Icirc=ce Igrave=cc Iuml=cf LT=3c Ntilde=d1',
  'Oacute=d3 Ocirc=d4 Ograve=d2 Oslash=d8 Otilde=d5 Ouml=d6 QUOT=22 REG=ae THORN=de Uacute=da Ucirc=db',
  'Ugrave=d9 Uuml=dc Yacute=dd aacute=e1 acirc=e2 acute=b4 aelig=e6 agrave=e0 amp=26 aring=e5 atilde=e3',
  'auml=e4 brvbar=a6 ccedil=e7 cedil=b8 cent=a2 copy=a9 curren=a4 deg=b0 divide=f7 eacute=e9 ecirc=ea',
  'egrave=e8 eth=f0 euml=eb frac12=bd frac14=bc frac34=be gt=3e iacute=ed icirc=ee iexcl=a1 igrave=ec',
  'iquest=bf iuml=ef laquo=ab lt=3c macr=af micro=b5 middot=b7 nbsp=a0 not=ac ntilde=f1 oacute=f3',
  'ocirc=f4 ograve=f2 ordf=aa ordm=ba oslash=f8 otilde=f5 ouml=f6 para=b6 plusmn=b1 pound=a3 quot=22',
  'raquo=bb reg=ae sect=a7 shy=ad sup1=b9 sup2=b2 sup3=b3 szlig=df thorn=fe times=d7 uacute=fa ucirc=fb',
  'ugrave=f9 uml=a8 uuml=fc yacute=fd yen=a5 yuml=ff apos;=27 hellip;=2026 mdash;=2014 ndash;=2013',
  'lsquo;=2018 rsquo;=2019 ldquo;=201c rdquo;=201d sbquo;=201a bdquo;=201e bull;=2022 trade;=2122',
  'euro;=20ac hearts;=2665 spades;=2660 clubs;=2663 diams;=2666 larr;=2190 rarr;=2192 uarr;=2191',
  'darr;=2193 harr;=2194 prime;=2032 Prime;=2033 lsaquo;=2039 rsaquo;=203a dagger;=2020 Dagger;=2021',
  'permil;=2030 thinsp;=2009 ensp;=2002 emsp;=2003 zwj;=200d zwnj;=200c lrm;=200e rlm;=200f oelig;=153',
  'OElig;=152 scaron;=161 Scaron;=160 Yuml;=178 fnof;=192 circ;=2c6 tilde;=2dc infin;=221e ne;=2260',
  'le;=2264 ge;=2265 minus;=2212 sum;=2211 prod;=220f radic;=221a asymp;=2248 equiv;=2261 star;=2606',
  'starf;=2605 check;=2713 cross;=2717 loz;=25ca sim;=223c sdot;=22c5 lowast;=2217 oline;=203e',
  'frasl;=2044 image;=2111 weierp;=2118 real;=211c alefsym;=2135 crarr;=21b5 lArr;=21d0 rArr;=21d2',
  'uArr;=21d1 dArr;=21d3 hArr;=21d4 forall;=2200 part;=2202 exist;=2203 empty;=2205 nabla;=2207',
  'isin;=2208 notin;=2209 ni;=220b prop;=221d ang;=2220 and;=2227 or;=2228 cap;=2229 cup;=222a',
  'int;=222b there4;=2234 sub;=2282 sup;=2283 nsub;=2284 sube;=2286 supe;=2287 oplus;=2295 otimes;=2297',
  'perp;=22a5 lceil;=2308 rceil;=2309 lfloor;=230a rfloor;=230b lang;=27e8 rang;=27e9 Alpha;=391',
  'Beta;=392 Gamma;=393 Delta;=394 Epsilon;=395 Zeta;=396 Eta;=397 Theta;=398 Iota;=399 Kappa;=39a',
  'Lambda;=39b Mu;=39c Nu;=39d Xi;=39e Omicron;=39f Pi;=3a0 Rho;=3a1 Sigma;=3a3 Tau;=3a4 Upsilon;=3a5',
  'Phi;=3a6 Chi;=3a7 Psi;=3a8 Omega;=3a9 alpha;=3b1 beta;=3b2 gamma;=3b3 delta;=3b4 epsilon;=3b5',
  'zeta;=3b6 eta;=3b7 theta;=3b8 iota;=3b9 kappa;=3ba lambda;=3bb mu;=3bc nu;=3bd xi;=3be omicron;=3bf',
  'pi;=3c0 rho;=3c1 sigmaf;=3c2 sigma;=3c3 tau;=3c4 upsilon;=3c5 phi;=3c6 chi;=3c7 psi;=3c8 omega;=3c9',
  'thetasym;=3d1 upsih;=3d2 piv;=3d6 Tab;=9 NewLine;=a excl;=21 num;=23 dollar;=24 percnt;=25 lpar;=28',
  'rpar;=29 ast;=2a plus;=2b comma;=2c period;=2e sol;=2f colon;=3a semi;=3b equals;=3d quest;=3f',
  'commat;=40 lsqb;=5b lbrack;=5b rsqb;=5d rbrack;=5d bsol;=5c lowbar;=5f grave;=60 lcub;=7b lbrace;=7b',
  'rcub;=7d rbrace;=7d verbar;=7c vert;=7c midast;=2a half;=bd dash;=2010 hyphen;=2010 horbar;=2015',
].join(' ');

/** name (with ";" unless it is a legacy semicolon-optional name) → replacement text */
const ENTITIES = new Map<string, string>();
for (const item of ENTITY_TABLE.split(' ')) {
  const [name, cps] = item.split('=') as [string, string];
  const value = String.fromCodePoint(...cps.split('.').map((h) => Number.parseInt(h, 16)));
  ENTITIES.set(name, value);
  if (!name.endsWith(';')) ENTITIES.set(`${name};`, value);
}

/** Python html's `_invalid_charrefs`: Windows-1252 for 0x80–0x9F, plus NUL and CR. */
const CP1252_C1 = [
  0x20ac, 0x81, 0x201a, 0x192, 0x201e, 0x2026, 0x2020, 0x2021, 0x2c6, 0x2030, 0x160, 0x2039, 0x152, 0x8d,
  0x17d, 0x8f, 0x90, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014, 0x2dc, 0x2122, 0x161, 0x203a,
  0x153, 0x9d, 0x17e, 0x178,
];

function isInvalidCodepoint(n: number): boolean {
  return (
    (n >= 0x1 && n <= 0x8) ||
    n === 0xb ||
    (n >= 0xe && n <= 0x1f) ||
    (n >= 0x7f && n <= 0x9f) ||
    (n >= 0xfdd0 && n <= 0xfdef) ||
    (n & 0xfffe) === 0xfffe
  );
}

function numericCharref(body: string): string {
  const hex = body[1] === 'x' || body[1] === 'X';
  const digits = body.slice(hex ? 2 : 1).replace(/;$/, '');
  const num = Number.parseInt(digits, hex ? 16 : 10);
  if (num === 0) return '\ufffd';
  if (num === 0x0d) return '\r';
  if (num >= 0x80 && num <= 0x9f) return String.fromCodePoint(CP1252_C1[num - 0x80]!);
  if ((num >= 0xd800 && num <= 0xdfff) || num > 0x10ffff || !Number.isFinite(num)) return '\ufffd';
  if (isInvalidCodepoint(num)) return '';
  return String.fromCodePoint(num);
}

const CHARREF_RE = /&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)/g;

/** Python `html.unescape` (named references limited to the table above). */
export function htmlUnescape(s: string): string {
  if (!s.includes('&')) return s;
  return s.replace(CHARREF_RE, (_m, body: string) => {
    if (body[0] === '#') return numericCharref(body);
    const hit = ENTITIES.get(body);
    if (hit !== undefined) return hit;
    // Longest legacy name that prefixes the reference ("&ampfoo" → "&foo").
    for (let x = body.length - 1; x > 1; x--) {
      const v = ENTITIES.get(body.slice(0, x));
      if (v !== undefined && !body.slice(0, x).endsWith(';')) return v + body.slice(x);
    }
    return `&${body}`;
  });
}

// ---------------------------------------------------------------------------------------------
// BeautifulSoup(caption, "html.parser").text

const TAG_OPEN_RE = /^<\/?[a-zA-Z]/;

/**
 * Text content of an HTML fragment the way Python's `html.parser` + BeautifulSoup `.text` see it:
 * `<tag …>` / `</tag>` (a letter after `<`), `<!-- … -->`, `<!…>` and `<?…>` are removed, a `<` not
 * starting such a construct is text, entities are decoded. Contents of `<script>`, `<style>` and
 * `<template>` are dropped (bs4 does not count them as text). An unterminated tag at the end of
 * the input is kept as text (as Python 3.11's `html.parser` does).
 */
export function htmlToText(s: string): string {
  if (!s.includes('<') && !s.includes('&')) return s;
  let out = '';
  let i = 0;
  while (i < s.length) {
    const lt = s.indexOf('<', i);
    if (lt < 0) {
      out += decodeDataRefs(s.slice(i), true);
      break;
    }
    out += decodeDataRefs(s.slice(i, lt), false);
    let end = -1;
    if (s.startsWith('<!--', lt)) {
      const close = s.indexOf('-->', lt + 4);
      end = close < 0 ? -1 : close + 3;
    } else if (TAG_OPEN_RE.test(s.slice(lt, lt + 3))) {
      end = tagEnd(s, lt);
      // Strings inside <script>, <style> and <template> are not part of BeautifulSoup's `.text`.
      const raw = end < 0 ? null : /^<(script|style|template)[\s/>]/i.exec(s.slice(lt, end));
      if (raw) {
        const close = s.toLowerCase().indexOf(`</${raw[1]!.toLowerCase()}`, end);
        const closeEnd = close < 0 ? -1 : s.indexOf('>', close);
        end = closeEnd < 0 ? s.length : closeEnd + 1;
      }
    } else if (s.startsWith('<!', lt) || s.startsWith('<?', lt)) {
      const close = s.indexOf('>', lt + 2);
      end = close < 0 ? -1 : close + 1;
    } else {
      out += '<';
      i = lt + 1;
      continue;
    }
    if (end < 0) {
      out += s.slice(lt);
      break;
    }
    i = end;
  }
  return out;
}

/**
 * Character references in a run of HTML text as bs4's html.parser builder resolves them: a
 * reference needs a terminating character (`;` is consumed, anything else is kept; a following tag
 * counts); a known name becomes its character, an unknown one stays as "&name" (its `;` dropped);
 * `&#128;`–`&#159;` are read as Windows-1252, 0 / surrogates / > U+10FFFF give U+FFFD; an unterminated reference at the end of the input is
 * kept verbatim.
 */
function decodeDataRefs(seg: string, atEof: boolean): string {
  if (!seg.includes('&')) return seg;
  return seg.replace(
    /&(?:#([0-9]+|[xX][0-9a-fA-F]+)|([a-zA-Z][-.a-zA-Z0-9]*))(;?)/g,
    (m, num: string | undefined, name: string | undefined, semi: string, offset: number) => {
      const next = offset + m.length;
      if (!semi) {
        const c = seg[next];
        if (c === undefined ? atEof : num !== undefined ? /[0-9a-fA-F]/.test(c) : /[a-zA-Z0-9]/.test(c))
          return m;
      }
      if (num !== undefined) {
        const n =
          num[0] === 'x' || num[0] === 'X' ? Number.parseInt(num.slice(1), 16) : Number.parseInt(num, 10);
        if (n >= 0x80 && n <= 0x9f) return String.fromCodePoint(CP1252_C1[n - 0x80]!);
        if (!Number.isFinite(n) || n === 0 || n > 0x10ffff || (n >= 0xd800 && n <= 0xdfff)) return '\ufffd';
        return String.fromCodePoint(n);
      }
      return ENTITIES.get(`${name};`) ?? ENTITIES.get(name!) ?? `&${name}`;
    },
  );
}

/** End (exclusive) of the tag starting at `lt`, skipping quoted attribute values; -1 if open. */
function tagEnd(s: string, lt: number): number {
  let quote = '';
  for (let j = lt + 1; j < s.length; j++) {
    const c = s[j]!;
    if (quote) {
      if (c === quote) quote = '';
    } else if (c === '"' || c === "'") {
      if (/[=\s]/u.test(s[j - 1] ?? '')) quote = c;
    } else if (c === '>') return j + 1;
  }
  return -1;
}

// ---------------------------------------------------------------------------------------------
// ftfy.fix_text (subset)

const LIGATURES: Record<string, string> = {
  Ĳ: 'IJ',
  ĳ: 'ij',
  ŉ: 'ʼn',
  Ǳ: 'DZ',
  ǲ: 'Dz',
  ǳ: 'dz',
  Ǆ: 'DŽ',
  ǅ: 'Dž',
  ǆ: 'dž',
  Ǉ: 'LJ',
  ǈ: 'Lj',
  ǉ: 'lj',
  Ǌ: 'NJ',
  ǋ: 'Nj',
  ǌ: 'nj',
  ﬀ: 'ff',
  ﬁ: 'fi',
  ﬂ: 'fl',
  ﬃ: 'ffi',
  ﬄ: 'ffl',
  ﬅ: 'ſt',
  ﬆ: 'st',
};
const LIGATURE_RE = new RegExp(`[${Object.keys(LIGATURES).join('')}]`, 'gu');
const FTFY_ENTITY_RE = /&#?[0-9A-Za-z]{1,24};/g;
const C1_RE = /[\x80-\x9f]/g;
// biome-ignore lint/suspicious/noControlCharactersInRegex: ftfy removes exactly these controls
const CONTROL_RE = /[\x00-\x08\x0b\x0e-\x1f\x7f\u206a-\u206f\ufeff\ufff9-\ufffc]/gu;
// biome-ignore lint/suspicious/noControlCharactersInRegex: ANSI terminal escapes
const TERMINAL_ESCAPE_RE = /\x1b\[((?:\d|;)*)([a-zA-Z])/g;

function fixCharacterWidth(s: string): string {
  return s.replace(/[\u3000\uff01-\uffef]/gu, (c) => {
    if (c === '\u3000') return ' ';
    const n = c.normalize('NFKC');
    return n;
  });
}

/**
 * The deterministic part of `ftfy.fix_text` (ftfy 6 default config); mojibake repair is omitted,
 * so text that is valid but mis-decoded (e.g. "cafÃ©") is left unchanged.
 */
export function ftfyFixTextSubset(text: string): string {
  const decodeEntities = !text.includes('<');
  let t = text;
  for (let iter = 0; iter < 8; iter++) {
    const orig = t;
    if (decodeEntities) {
      t = t.replace(FTFY_ENTITY_RE, (m) => {
        const name = m.slice(1);
        const v = ENTITIES.get(name);
        if (v !== undefined && !m.startsWith('&#')) return v;
        if (m.startsWith('&#')) {
          const u = htmlUnescape(m);
          return u.includes(';') ? m : u;
        }
        return m;
      });
    }
    t = t.replace(C1_RE, (c) => String.fromCodePoint(CP1252_C1[c.charCodeAt(0) - 0x80]!));
    t = t.replace(LIGATURE_RE, (c) => LIGATURES[c]!);
    t = fixCharacterWidth(t);
    t = t.replace(/[\u02bc\u2018-\u201b]/gu, "'").replace(/[\u201c-\u201f]/gu, '"');
    t = t.replace(/\r\n|[\r\u2028\u2029\x85]/gu, '\n');
    t = t.replace(TERMINAL_ESCAPE_RE, '');
    t = t.replace(CONTROL_RE, '');
    t = t.normalize('NFC');
    if (t === orig) break;
  }
  return t;
}

// ---------------------------------------------------------------------------------------------
// _clean_caption

const RULES_A: Array<[RegExp, string]> = [
  [re('&quot;?'), ''],
  [re('&amp'), ''],
  [re('\\d{1,3}\\.\\d{1,3}\\.\\d{1,3}\\.\\d{1,3}'), ' '], // IP addresses
  [re('\\d:\\d\\d\\s+$'), ''], // article ids
  [/\\n/g, ' '], // a literal backslash-n
  [re('#\\d{1,3}\\b'), ''],
  [re('#\\d{5,}\\b'), ''],
  [re('\\b\\d{6,}\\b'), ''],
  [re(`${NS}+\\.(?:png|jpg|jpeg|bmp|webp|eps|pdf|apk|mp4)`), ''], // filenames
  [/["']{2,}/g, '"'],
  [/[.]{2,}/g, ' '],
  [BAD_PUNCT_RE, ' '],
  [re('\\s+\\.\\s+'), ' '],
];

const RULES_B: Array<[RegExp, string]> = [
  [re('\\b[a-zA-Z]{1,3}\\d{3,15}\\b'), ''], // jc6640
  [re('\\b[a-zA-Z]+\\d+[a-zA-Z]+\\b'), ''], // jc6640vc
  [re('\\b\\d+[a-zA-Z]+\\d+\\b'), ''], // 6640vc231
  [re('(worldwide\\s+)?(free\\s+)?shipping'), ''],
  [re('(free\\s)?download(\\sfree)?'), ''],
  [re(`\\bclick\\b\\s(?:for|on)\\s${W}+`), ''],
  [re('\\b(?:png|jpg|jpeg|bmp|webp|eps|pdf|apk|mp4)(\\simage[s]?)?'), ''],
  [re('\\bpage\\s+\\d+\\b'), ''],
  [re('\\b\\d*[a-zA-Z]+\\d+[a-zA-Z]+\\d+[a-zA-Z\\d]*\\b'), ' '], // j2d1a2a...
  [re('\\b\\d+\\.?\\d*[xх×]\\d+\\.?\\d*\\b'), ''], // 1920x1080
  [re('\\b\\s+:\\s+'), ': '],
  [re('(\\P{Nd}[,\\./])\\b'), '$1 '],
  [re('\\s+'), ' '],
  [/^["']([\s\S]+)["']$/u, '$1'],
  [/^['_,\-:;]/u, ''],
  [/['_,\-:+]$/u, ''],
  [re('^\\.\\S+$'), ''],
];

/** One pass of diffusers `IFPipeline._clean_caption`. */
export function cleanCaptionOnce(input: string): string {
  let caption = unquotePlus(String(input));
  caption = pyStrip(caption).toLowerCase();
  caption = caption.replaceAll('<person>', 'person');
  for (const r of URL_RES) caption = caption.replace(r, '');
  caption = htmlToText(caption);
  caption = caption.replace(NICKNAME_RE, '');
  for (const r of CJK_RES) caption = caption.replace(r, '');
  caption = caption.replace(DASH_RE, '-');
  caption = caption.replace(/[`´«»“”¨]/gu, '"').replace(/[‘’]/gu, "'");
  for (const [r, to] of RULES_A) caption = caption.replace(r, to);
  const dashes = caption.match(/[-_]/g);
  if (dashes && dashes.length > 3) caption = caption.replace(/[-_]/g, ' ');
  caption = ftfyFixTextSubset(caption);
  caption = htmlUnescape(htmlUnescape(caption));
  for (const [r, to] of RULES_B) caption = caption.replace(r, to);
  return pyStrip(caption);
}

/**
 * diffusers `_text_preprocessing(text, clean_caption)`: with `cleanCaption` the caption is cleaned
 * twice; otherwise it is lower-cased and stripped.
 */
export function textPreprocessing(text: string, cleanCaption: boolean): string {
  if (cleanCaption) return cleanCaptionOnce(cleanCaptionOnce(text));
  return pyStrip(text.toLowerCase());
}

/** `textPreprocessing` over a batch. */
export function preprocessPrompts(texts: string | readonly string[], cleanCaption: boolean): string[] {
  const list = typeof texts === 'string' ? [texts] : texts;
  return list.map((t) => textPreprocessing(t, cleanCaption));
}
