import { describe, expect, it } from 'vitest';
import {
  cleanCaptionOnce,
  ftfyFixTextSubset,
  htmlUnescape,
  preprocessPrompts,
  pyStrip,
  textPreprocessing,
  unquotePlus,
} from '../../src/text/clean_caption.js';

/**
 * [input, expected `_text_preprocessing(input, clean_caption=True)`]. The expected strings were
 * produced by running diffusers' `IFPipeline._clean_caption` (twice, as `_text_preprocessing`
 * does) with Python 3.11.7, beautifulsoup4 4.15.0 and ftfy 6.3.1, and pasted here as literals.
 */
const REFERENCE: Array<[string, string]> = [
  ['A photo of a corgi', 'a photo of a corgi'],
  [
    '  Ultra close-up color photo portrait of rainbow owl with deer horns in the woods  ',
    'ultra close-up color photo portrait of rainbow owl with deer horns in the woods',
  ],
  ['Check https://example.com/path?x=1 and www.test.org/page for more', 'check ?x=1 and for more'],
  ['visit http://foo.bar/baz.html now', 'visit foo. bar baz. html now'],
  ['my site example.co.uk rocks', 'my site uk rocks'],
  [
    '<b>Bold</b> &amp; <i>italic</i> &lt;3 &copy; 2023 &quot;quoted&quot; &#8217;s &eacute;t&eacute;',
    'bold italic <3 2023 "quoted" \'s été',
  ],
  ['<p class="x">Hello<br/>World</p><!-- comment -->', 'helloworld'],
  ['a < b and c > d', 'a < b and c > d'],
  ['Tom &amp Jerry &ampersand', 'tom jerry ersand'],
  ['hi @john_doe and @Jane123! email me at foo@bar', 'hi and ! email me at foo'],
  ['日本語のテキスト and 中文 mixed with ㈱ and ㍿ and 한국어', 'のテキスト and mixed with and and 한국어'],
  ['emoji 🙂🚀 test ❤️', 'emoji 🙂🚀 test ❤️'],
  ['long --- dash —— runs ‒ – — ― here', 'long dash runs here'],
  ['this-is-my-cute-cat', 'this is my cute cat'],
  ['this_is_my_cute_cat photo', 'this is my cute cat photo'],
  [
    '“smart quotes” and ‘single’ and «guillemets» `back` ´acute´',
    'smart quotes" and \'single\' and "guillemets" "back" "acute',
  ],
  ['server at 192.168.0.1 and 10.0.0.255', 'server at and'],
  ['article 12:34   ', 'article 12:34'],
  ['line one\\nline two', 'line one line two'],
  ['issue #12 and #12345 and #1234 and number 1234567 and 12345', 'issue and and 1234 and number and 12345'],
  ['image file IMG_1234.jpg and photo.png and doc.pdf here', 'image file and and here'],
  ['"""AUSVERKAUFT"""', 'ausverkauft'],
  ['wait... what.. ok', 'wait what ok'],
  [
    '***SALE*** ### #tag (parens) [brackets] {braces} |pipe| back\\slash /slash ~tilde~ ©®™ ½ ¾ ¿¡ §',
    'sale tag parens brackets braces pipe back slash slash tilde',
  ],
  ['spaces . around . dots', 'spaces around dots'],
  ['free shipping worldwide free shipping on all orders', 'on all orders'],
  ['free download and download free', 'and'],
  ['click for details and click on here', 'and'],
  ['png images and jpg image and page 12', 'and and'],
  ['jc6640 and jc6640vc and 6640vc231 and j2d1a2a3', 'and and and'],
  ['wallpaper 1920x1080 and 3.5х4 and 800×600', 'wallpaper and and'],
  ['key : value and a,b.c/d', 'key: value and a, b. c d'],
  ["'quoted caption'", 'quoted caption'],
  ['"double quoted"', 'double quoted'],
  ['- leading dash', 'leading dash'],
  ['trailing plus+', 'trailing plus'],
  ['.hidden', ''],
  ['Ｆｕｌｌ ｗｉｄｔｈ ＴＥＸＴ', 'full width text'],
  ['ﬁne ligatures ﬂow', 'fine ligatures flow'],
  ['<person> walking a dog', 'person walking a dog'],
  ['100%25 cotton+shirt%20blue', '100% cotton shirt blue'],
  ['caf%C3%A9 and bad %ZZ and %E2%80', 'café and bad %zz and �'],
  ['', ''],
  ['   ', ''],
  ['UPPER CASE Ünïcödé ΣΟΦΙΑ', 'upper case ünïcödé σοφια'],
  ['tab\tseparated\nnewline', 'tab separated newline'],
  ['A sign that says "Geekbang"', 'a sign that says "geekbang"'],
  ['x: y', 'x: y'],
  ['price 10.5x20 and 2x', 'price 10. and 2x'],
  ['@@@ ### &&& ', ''],
  ['the <script>alert(1)</script> end', 'the end'],
  ['<unclosed tag', '<unclosed tag'],
  ['a&#128;b &#x27;c&#39; &#0; &#xD800;', "a€b 'c' � �"],
  ['ﬀ ﬃ Ĳ', 'ff ffi ij'],
  ['multiple     spaces    here', 'multiple spaces here'],
  ['mr. smith, dr. who.and co.', 'mr. smith, dr. who. and co.'],
  ['a red circle to the left of a blue square', 'a red circle to the left of a blue square'],
  ['some text.com/foo@bar and test.com@x', 'some foo and test. com'],
  ['Hello\u00a0World\u3000Ideographic', 'hello world ideographic'],
  ['<style>p{color:red}</style>styled text', 'styled text'],
  ['<template><b>x</b></template>after', 'after'],
  ["<div title='a>b'>quoted attr</div>", 'quoted attr'],
  ['<!DOCTYPE html><html><body>doc</body></html>', 'doc'],
  ["<?xml version='1.0'?>pi text", 'pi text'],
  ['x <3 y', 'x <3 y'],
  ['1 <2> 3', '1 <2> 3'],
  ['&nbsp;&hellip;&mdash;&trade;', '…'],
  ['&ampfoo &ltbar &notit; &unknownentity; &#x1F600; &#65', 'foo ltbar notit unknownentity 😀'],
  ['cafÃ© mojibake', 'cafã mojibake'],
  ['A%2BB', 'a b'],
  ['%F0%9F%98%80 smile', '😀 smile'],
  ['don’t stop', "don't stop"],
  ['a\u2028b\u2029c\u0085d', 'a b c…d'],
  ['ctrl\u0007char\u200bzwsp', 'ctrlchar\u200bzwsp'],
  ['\u0093curly\u0094 c1', '"curly" c1'],
  ['naïve Ǆ ǅ', 'naïve dž dž'],
  ['WORLDWIDE SHIPPING', ''],
  ['Page 3 of 10', 'of 10'],
  ['foo_bar-baz qux', 'foo_bar-baz qux'],
  ['a-b-c-d', 'a-b-c-d'],
  ['Go to www:foo and https:x now', 'go to oo and now'],
  ['foo.it/bar baz', 'baz'],
  ['123456 1234567890123 ab123 abc12345 abcd1234', 'abcd1234'],
  ['#1 #12 #123 #1234 #12345', '1234'],
  ['caption,with,commas.and.dots/slashes', 'caption, with, commas. and. dots slashes'],
  ['«Привет» мир — тест', '"привет" мир - тест'],
  ['Ελληνικά και 123x456', 'ελληνικά και'],
  ['é́ combining', 'é́ combining'],
  ['the 2:30   pm', 'the 2:30 pm'],
  ['x - y', 'x - y'],
  ['_leading underscore', 'leading underscore'],
  [':colon lead', 'colon lead'],
  ['trailing colon:', 'trailing colon'],
  ["'", ''],
  ['"a"', 'a'],
  ["''", '"'],
  ['ends with quote"', 'ends with quote"'],
  ['ab@cd.com contact', 'ab contact'],
  ['line\r\nbreak', 'line break'],
  ['&lt;b&gt;escaped tag&lt;/b&gt;', 'escaped tag< b>'],
  ['&amp;lt;double&amp;gt;', 'lt;double gt;'],
  ['Ｈｅｌｌｏ，\u3000ｗｏｒｌｄ！', 'hello, world!'],
  ['ｶﾀｶﾅ halfwidth', 'カタカナ halfwidth'],
  ['①②③ circled', '①②③ circled'],
  ['Σ final sigma ΣΑΣ', 'σ final sigma σας'],
  ['İstanbul', 'i̇stanbul'],
];

describe('clean_caption (diffusers IF _text_preprocessing parity)', () => {
  it.each(REFERENCE)('%j', (input, expected) => {
    expect(textPreprocessing(input, true)).toBe(expected);
  });

  it('clean_caption=false is lower + strip only', () => {
    expect(textPreprocessing('  Hello WORLD &amp; <b>x</b> \n', false)).toBe('hello world &amp; <b>x</b>');
    expect(textPreprocessing('', false)).toBe('');
    expect(preprocessPrompts(['A', ' B '], false)).toEqual(['a', 'b']);
    expect(preprocessPrompts('C', true)).toEqual(['c']);
  });

  it('a single pass differs from the double pass only where the first pass leaves work', () => {
    expect(cleanCaptionOnce('A photo')).toBe('a photo');
  });
});

describe('clean_caption helpers', () => {
  it('pyStrip uses the Python whitespace set', () => {
    expect(pyStrip('\u001c x \u0085')).toBe('x');
    expect(pyStrip('\ufeffx')).toBe('\ufeffx'); // U+FEFF is not whitespace in Python
  });

  it('unquotePlus decodes %XX as UTF-8 with replacement', () => {
    expect(unquotePlus('a+b%20c')).toBe('a b c');
    expect(unquotePlus('caf%C3%A9')).toBe('café');
    expect(unquotePlus('%E2%80')).toBe('\ufffd');
    expect(unquotePlus('100%')).toBe('100%');
    expect(unquotePlus('%zz')).toBe('%zz');
  });

  it('htmlUnescape follows Python html.unescape', () => {
    expect(htmlUnescape('&amp;&lt;&gt;&quot;&#39;&#x27;')).toBe("&<>\"''");
    expect(htmlUnescape('&ampfoo &copy2023')).toBe('&foo ©2023');
    expect(htmlUnescape('&#128;&#0;&#xD800;&#1;')).toBe('\u20ac\ufffd\ufffd');
    expect(htmlUnescape('&unknown; &')).toBe('&unknown; &');
  });

  it('ftfy subset: ligatures, width, quotes, C1 controls, NFC', () => {
    expect(ftfyFixTextSubset('ﬁ Ｈｅｌｌｏ “q” \u0093x\u0094 e\u0301')).toBe('fi Hello "q" "x" é');
  });
});
