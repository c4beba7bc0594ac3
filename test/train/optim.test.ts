import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { ImagenError } from '../../src/engine/errors.js';
import { NDArray } from '../../src/engine/ndarray.js';
import { Parameter } from '../../src/engine/parameter.js';
import { EMA } from '../../src/train/ema.js';
import { constantWithWarmup, cosineWithWarmup, linearWithWarmup } from '../../src/train/lr.js';
import { AdamW, clipGradNorm, type Gradients, type Optimizer, SGD } from '../../src/train/optim.js';

/**
 * Reference numbers produced by PyTorch 2.13.0+cpu (torch.optim.AdamW / SGD with foreach=False,
 * torch.nn.utils.clip_grad_norm_ with foreach=False) and by a re-implementation of diffusers'
 * EMAModel.get_decay / step (current main: (1+s)/(10+s) without warmup), on the parameters and
 * gradients built by `makeParams` / `gradsAt` below. Each optimizer entry lists, per step, the
 * values of [a, b] after that step. (On the machine that produced them our results matched
 * these bit for bit; the tolerance allows for torch kernels that fuse multiply-adds.)
 */
const REF = {
  adamw: [
    [
      [
        0.5095000267028809, -1.2387499809265137, 1.9880000352859497, 0.11487500369548798, -0.7392500042915344,
        2.986999988555908,
      ],
      [0.08990000933408737, -0.18979999423027039, 0.2897000312805176, 0.38960000872612],
    ],
    [
      [
        0.5116539001464844, -1.2278594970703125, 1.9766902923583984, 0.10591636598110199, -0.7285369634628296,
        2.974013090133667,
      ],
      [0.0801582932472229, -0.17961019277572632, 0.28008851408958435, 0.38250982761383057],
    ],
    [
      [
        0.5065689086914062, -1.21705162525177, 1.9659820795059204, 0.09715618938207626, -0.7178813815116882,
        2.9610390663146973,
      ],
      [0.07049812376499176, -0.16943058371543884, 0.27107685804367065, 0.3829859793186188],
    ],
    [
      [
        0.4991483688354492, -1.2062305212020874, 1.955803632736206, 0.08838804811239243, -0.7073069214820862,
        2.948078155517578,
      ],
      [0.06082352623343468, -0.15926115214824677, 0.2625933885574341, 0.38775527477264404],
    ],
    [
      [
        0.4907159209251404, -1.1953519582748413, 1.946099042892456, 0.07953490316867828, -0.6968403458595276,
        2.9351301193237305,
      ],
      [0.05109032988548279, -0.1491018831729889, 0.2545819580554962, 0.3943471610546112],
    ],
  ],
  adamw_default: [
    [
      [
        0.5009949803352356, -1.2489874362945557, 1.998979926109314, 0.1239987462759018, -0.7489925026893616,
        2.9989700317382812,
      ],
      [0.09899900108575821, -0.19899800419807434, 0.29899701476097107, 0.3989960253238678],
    ],
    [
      [
        0.5012562870979309, -1.2480096817016602, 1.9980276823043823, 0.12311312556266785, -0.7479876279830933,
        2.9979400634765625,
      ],
      [0.09803283214569092, -0.19799600541591644, 0.2980618476867676, 0.3983219861984253],
    ],
    [
      [
        0.5007939338684082, -1.2470391988754272, 1.9971344470977783, 0.12224647402763367, -0.7469874024391174,
        2.9969100952148438,
      ],
      [0.09707384556531906, -0.19699402153491974, 0.2971857190132141, 0.3984038531780243],
    ],
    [
      [
        0.5000975131988525, -1.2460662126541138, 1.9962931871414185, 0.12137815356254578, -0.7459942698478699,
        2.995880126953125,
      ],
      [0.09611246734857559, -0.19599205255508423, 0.29636150598526, 0.3989150822162628],
    ],
    [
      [
        0.49929916858673096, -1.245086431503296, 1.9954982995986938, 0.12050046026706696, -0.7450109124183655,
        2.9948501586914062,
      ],
      [0.09514427185058594, -0.19499008357524872, 0.2955836355686188, 0.3996090590953827],
    ],
  ],
  sgd_momentum_wd: [
    [
      [
        0.5097500085830688, -1.2393749952316284, 1.9490000009536743, 0.1224374994635582, -0.6796249747276306,
        2.9635000228881836,
      ],
      [0.0994499996304512, -0.18490000069141388, 0.2748500108718872, 0.3498000204563141],
    ],
    [
      [
        0.5132701396942139, -1.2091927528381348, 1.8771255016326904, 0.11007002741098404, -0.5509476661682129,
        2.8941683769226074,
      ],
      [0.09790527820587158, -0.1562175452709198, 0.23957759141921997, 0.3044451177120209],
    ],
    [
      [
        0.4961816072463989, -1.1514241695404053, 1.7948331832885742, 0.07638426870107651, -0.3748626112937927,
        2.7953226566314697,
      ],
      [0.09496607631444931, -0.11532522737979889, 0.19937928020954132, 0.31347349286079407],
    ],
    [
      [
        0.44555383920669556, -1.058856725692749, 1.7073726654052734, 0.006028899922966957,
        -0.16119864583015442, 2.669963836669922,
      ],
      [0.09027330577373505, -0.06346448510885239, 0.15685111284255981, 0.42144230008125305],
    ],
    [
      [
        0.3497660756111145, -0.9250166416168213, 1.6178045272827148, -0.11979395896196365,
        0.08117949962615967, 2.520806074142456,
      ],
      [0.08350467681884766, -0.0017580842832103372, 0.11349734663963318, 0.6684035062789917],
    ],
  ],
  sgd_nesterov_wd: [
    [
      [
        0.5185250043869019, -1.229812502861023, 1.9031000137329102, 0.1201312467455864, -0.6162874698638916,
        2.930649995803833,
      ],
      [0.09895499795675278, -0.17131000757217407, 0.2522149980068207, 0.30461999773979187],
    ],
    [
      [
        0.5164299011230469, -1.1820379495620728, 1.8124821186065674, 0.09894149750471115,
        -0.43519824743270874, 2.831800937652588,
      ],
      [0.09651549160480499, -0.13041625916957855, 0.20785389840602875, 0.26366859674453735],
    ],
    [
      [
        0.4807870388031006, -1.0994713306427002, 1.7208938598632812, 0.04608079046010971,
        -0.21658185124397278, 2.706465244293213,
      ],
      [0.09232277423143387, -0.0785650834441185, 0.16326160728931427, 0.321698933839798],
    ],
    [
      [
        0.39998412132263184, -0.9756487607955933, 1.6288951635360718, -0.05724310129880905,
        0.030682800337672234, 2.557366371154785,
      ],
      [0.08605505526065826, -0.01688307896256447, 0.11869198083877563, 0.5187392830848694],
    ],
    [
      [
        0.26359784603118896, -0.8047763705253601, 1.5375733375549316, -0.23290948569774628,
        0.2985943555831909, 2.386965751647949,
      ],
      [0.07742390036582947, 0.05361141264438629, 0.07466503232717514, 0.8907275199890137],
    ],
  ],
  sgd_plain: [
    [
      [
        0.5199999809265137, -1.2300000190734863, 1.899999976158142, 0.11999999731779099, -0.6100000143051147,
        2.930000066757202,
      ],
      [0.0989999994635582, -0.17000000178813934, 0.25, 0.30000001192092896],
    ],
    [
      [
        0.5099999904632568, -1.190000057220459, 1.850000023841858, 0.09999999403953552, -0.48000001907348633,
        2.8600001335144043,
      ],
      [0.09700000286102295, -0.14000000059604645, 0.22499999403953552, 0.30000001192092896],
    ],
    [
      [
        0.4699999988079071, -1.1299999952316284, 1.8166667222976685, 0.05499999597668648,
        -0.36000001430511475, 2.7900002002716064,
      ],
      [0.09400000423192978, -0.10999999940395355, 0.2083333283662796, 0.4000000059604645],
    ],
    [
      [
        0.4000000059604645, -1.0499999523162842, 1.7916667461395264, -0.025000005960464478, -0.25,
        2.7200002670288086,
      ],
      [0.09000000357627869, -0.07999999821186066, 0.19583332538604736, 0.6000000238418579],
    ],
    [
      [
        0.30000001192092896, -0.9499999284744263, 1.7716667652130127, -0.15000000596046448,
        -0.15000000596046448, 2.6500003337860107,
      ],
      [0.08500000089406967, -0.04999999701976776, 0.18583332002162933, 0.9000000357627869],
    ],
  ],
  clip: {
    total: 1.9703525304794312,
    g1: [
      0.2030092477798462, -0.3045138716697693, 0.16917437314987183, 0.22838540375232697, -0.6090277433395386,
      0.35526618361473083,
    ],
    g2: [0.015225693583488464, -0.15225693583488464, 0.08458718657493591, -0.5075231194496155],
  },
  clip_noop: {
    total: 1.9703525304794312,
    g1: [
      0.4000000059604645, -0.6000000238418579, 0.3333333432674408, 0.44999998807907104, -1.2000000476837158,
      0.699999988079071,
    ],
    g2: [0.029999999329447746, -0.30000001192092896, 0.1666666716337204, -1.0],
  },
  ema_decay_default: [
    0.0, 0.0, 0.18181818181818182, 0.25, 0.3076923076923077, 0.35714285714285715, 0.4, 0.4375,
  ],
  ema_decay_warmup: [
    0.0, 0.0, 0.0, 0.0, 0.3700394750525634, 0.5192501432308638, 0.6031497370079502, 0.6580048106646605,
    0.9999,
  ],
  ema_hist: [
    [
      0.5199999809265137, -1.2300000190734863, 1.899999976158142, 0.11999999731779099, -0.6100000143051147,
      2.930000066757202,
    ],
    [
      0.5140539407730103, -1.2062158584594727, 1.870269775390625, 0.10810792446136475, -0.5327015519142151,
      2.8883779048919678,
    ],
    [
      0.49472784996032715, -1.1727806329727173, 1.846754550933838, 0.08480993658304214, -0.45693889260292053,
      2.8452205657958984,
    ],
    [
      0.46123650670051575, -1.129371166229248, 1.8272780179977417, 0.04598626121878624, -0.38377493619918823,
      2.8009486198425293,
    ],
    [
      0.41301554441452026, -1.0757266283035278, 1.810646414756775, -0.012627307325601578, -0.3138599395751953,
      2.7558045387268066,
    ],
  ],
};

const P0 = [0.5, -1.25, 2.0, 0.125, -0.75, 3.0];
const Q0 = [0.1, -0.2, 0.3, 0.4];

function makeParams(): [Parameter, Parameter] {
  return [
    new Parameter('a', [6], { value: NDArray.f32([6], P0) }),
    new Parameter('net.b', [2, 2], { value: NDArray.f32([2, 2], Q0) }),
  ];
}

/** Same gradients as the Python script (float64 expressions rounded to float32). */
function gradsAt(k: number, [a, b]: readonly Parameter[]): Map<Parameter, Float32Array> {
  return new Map([
    [a!, Float32Array.from([0.3 * k - 0.5, -0.2 * k, 1.0 / k, 0.05 * k * k, -1.5 + 0.1 * k, 0.7])],
    [b!, Float32Array.from([0.01 * k, -0.3, 0.5 / k, 2.0 - k])],
  ]);
}

function expectClose(actual: ArrayLike<number>, expected: readonly number[], rel = 1e-6, abs = 1e-7): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (!(Math.abs(a - e) <= rel * Math.abs(e) + abs)) {
      throw new Error(`element ${i}: got ${a}, expected ${e} (diff ${a - e})`);
    }
  }
}

function runAgainstReference(
  make: (ps: Parameter[]) => Optimizer,
  ref: readonly (readonly number[][])[],
): void {
  const ps = makeParams();
  const opt = make(ps);
  for (let k = 1; k <= ref.length; k++) {
    opt.step(gradsAt(k, ps));
    expectClose(ps[0].data, ref[k - 1]![0]!);
    expectClose(ps[1].data, ref[k - 1]![1]!);
  }
  expect(opt.stepCount).toBe(ref.length);
}

function bits(x: Float32Array): number[] {
  return Array.from(new Uint32Array(x.buffer, x.byteOffset, x.length));
}

describe('AdamW', () => {
  it('the committed WebAssembly module is the assembly of its .wat source', () => {
    // scripts/build-wasm.mjs --check exits 1 when adamw_bytes.ts does not match adamw.wat
    expect(() =>
      execFileSync(process.execPath, ['scripts/build-wasm.mjs', '--check'], { stdio: 'pipe' }),
    ).not.toThrow();
  });

  it('matches torch.optim.AdamW (lr 1e-2, weight_decay 0.1)', () => {
    runAgainstReference(
      (ps) => new AdamW(ps, { lr: 0.01, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.1 }),
      REF.adamw,
    );
  });

  it('matches torch.optim.AdamW with the plain JS loop too', () => {
    runAgainstReference(
      (ps) => new AdamW(ps, { lr: 0.01, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.1, kernel: 'js' }),
      REF.adamw,
    );
  });

  it("the WebAssembly SIMD loop gives the JS loop's bits, through lane tails and a state-dict hand-over", () => {
    const sizes = [1, 3, 4, 5, 8, 1027];
    let seed = 12345;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31 - 0.5;
    };
    const init = sizes.map((n) => Float32Array.from({ length: n }, () => rand() * 4));
    const grads = Array.from({ length: 6 }, () =>
      sizes.map((n) => Float32Array.from({ length: n }, () => rand() * 3)),
    );
    const make = () =>
      sizes.map((n, i) => new Parameter(`p${i}`, [n], { value: NDArray.f32([n], init[i]!) }));
    const run = (kernel: 'wasm' | 'js', handOverTo?: 'wasm' | 'js') => {
      const ps = make();
      let opt = new AdamW(ps, { lr: 0.03, weightDecay: 0.05, kernel });
      expect(opt.kernel).toBe(kernel); // Node has WebAssembly SIMD: the fast path is really taken
      grads.forEach((gs, k) => {
        if (k === 3 && handOverTo) {
          const next = new AdamW(ps, { lr: 0.03, weightDecay: 0.05, kernel: handOverTo });
          next.loadStateDict(opt.stateDict());
          opt = next;
        }
        // a parameter without a gradient this step keeps its own step count
        opt.step(new Map(ps.flatMap((p, i) => (k === 1 && i === 2 ? [] : [[p, gs[i]!.slice()]]))));
      });
      return { params: ps.map((p) => bits(p.data)), state: opt.stateDict() };
    };
    const js = run('js');
    for (const [kernel, to] of [['wasm'], ['wasm', 'js'], ['js', 'wasm']] as const) {
      const other = run(kernel, to);
      expect(other.params, `${kernel}→${to}`).toEqual(js.params);
      for (const [k, v] of Object.entries(js.state))
        expect(Array.from(other.state[k]!.data as ArrayLike<number | bigint>), k).toEqual(
          Array.from(v.data as ArrayLike<number | bigint>),
        );
    }
  });

  it('matches torch.optim.AdamW defaults (betas 0.9/0.999, eps 1e-8, weight_decay 1e-2)', () => {
    const opt = new AdamW([], { lr: 1e-3 });
    expect([opt.beta1, opt.beta2, opt.eps, opt.weightDecay]).toEqual([0.9, 0.999, 1e-8, 1e-2]);
    runAgainstReference((ps) => new AdamW(ps, { lr: 1e-3 }), REF.adamw_default);
  });

  it('state dict has torch-style keys, dtypes and shapes', () => {
    const ps = makeParams();
    const opt = new AdamW(ps, { lr: 0.01 });
    expect(Object.keys(opt.stateDict())).toEqual(['step']);
    opt.step(gradsAt(1, ps));
    const sd = opt.stateDict();
    expect(Object.keys(sd).sort()).toEqual(
      [
        'step',
        'a.exp_avg',
        'a.exp_avg_sq',
        'a.step',
        'net.b.exp_avg',
        'net.b.exp_avg_sq',
        'net.b.step',
      ].sort(),
    );
    expect(sd.step!.dtype).toBe('int64');
    expect(sd.step!.shape).toEqual([]);
    expect(sd.step!.toArray()).toEqual([1]);
    expect(sd['net.b.exp_avg']!.shape).toEqual([2, 2]);
    expect(sd['net.b.exp_avg']!.dtype).toBe('float32');
    // A copy: mutating it does not touch the optimizer.
    (sd['a.exp_avg']!.data as Float32Array).fill(99);
    expect(opt.stateDict()['a.exp_avg']!.data[0]).not.toBe(99);
  });
});

describe('SGD', () => {
  it('matches torch.optim.SGD with momentum and weight decay', () => {
    runAgainstReference(
      (ps) => new SGD(ps, { lr: 0.05, momentum: 0.9, weightDecay: 0.01 }),
      REF.sgd_momentum_wd,
    );
  });

  it('matches torch.optim.SGD with Nesterov momentum and weight decay', () => {
    runAgainstReference(
      (ps) => new SGD(ps, { lr: 0.05, momentum: 0.9, weightDecay: 0.01, nesterov: true }),
      REF.sgd_nesterov_wd,
    );
  });

  it('matches plain torch.optim.SGD and keeps no state', () => {
    runAgainstReference((ps) => new SGD(ps, { lr: 0.1 }), REF.sgd_plain);
    const opt = new SGD(makeParams(), { lr: 0.1 });
    opt.step(gradsAt(1, opt.params));
    expect(Object.keys(opt.stateDict())).toEqual(['step']);
  });

  it('rejects invalid options', () => {
    expect(() => new SGD([], { lr: 0.1, nesterov: true })).toThrow(/nesterov/);
    expect(() => new SGD([], { lr: -1 })).toThrow(ImagenError);
    expect(() => new AdamW([], { lr: 0.1, betas: [1, 0.999] })).toThrow(/betas\[0\]/);
    const [a] = makeParams();
    expect(() => new AdamW([a, a], { lr: 0.1 })).toThrow(/appears twice/);
  });
});

describe.each([
  ['AdamW', (ps: Parameter[]) => new AdamW(ps, { lr: 0.01, weightDecay: 0.1 })],
  ['SGD', (ps: Parameter[]) => new SGD(ps, { lr: 0.05, momentum: 0.9, weightDecay: 0.01, nesterov: true })],
] as const)('%s common behaviour', (_name, make) => {
  it('skips parameters without a gradient or with requiresGrad=false', () => {
    const [a, b] = makeParams();
    const frozen = new Parameter('frozen', [3], { value: NDArray.f32([3], [1, 2, 3]), requiresGrad: false });
    const opt = make([a, b, frozen]);
    const grads = new Map([
      [a, Float32Array.from([1, 1, 1, 1, 1, 1])],
      [frozen, Float32Array.from([5, 5, 5])],
    ]);
    opt.step(grads);
    opt.step(grads);
    expect(Array.from(b.data)).toEqual(Array.from(Float32Array.from(Q0)));
    expect(Array.from(frozen.data)).toEqual([1, 2, 3]);
    expect(Array.from(a.data)).not.toEqual(Array.from(Float32Array.from(P0)));
    const keys = Object.keys(opt.stateDict());
    expect(keys.some((k) => k.startsWith('net.b.') || k.startsWith('frozen.'))).toBe(false);
    expect(opt.stepCount).toBe(2);
  });

  it('rejects a gradient of the wrong length', () => {
    const ps = makeParams();
    const opt = make(ps);
    expect(() => opt.step(new Map([[ps[0], new Float32Array(5)]]))).toThrow(/has 5 elements/);
  });

  it('stateDict/loadStateDict round trip continues bit-identically', () => {
    const straight = makeParams();
    const optA = make(straight);
    for (let k = 1; k <= 5; k++) optA.step(gradsAt(k, straight));

    const ps = makeParams();
    const first = make(ps);
    for (let k = 1; k <= 3; k++) first.step(gradsAt(k, ps));
    const saved = first.stateDict();
    // Simulate a save/restore cycle: fresh parameter objects holding the saved values.
    const resumed: Parameter[] = ps.map(
      (p) => new Parameter(p.name, p.shape, { value: new NDArray('float32', [...p.shape], p.data.slice()) }),
    );
    const second = make(resumed);
    second.loadStateDict(saved);
    expect(second.stepCount).toBe(3);
    for (let k = 4; k <= 5; k++) second.step(gradsAt(k, resumed));
    expect(bits(resumed[0]!.data)).toEqual(bits(straight[0].data));
    expect(bits(resumed[1]!.data)).toEqual(bits(straight[1].data));
    const sdA = optA.stateDict();
    const sdB = second.stateDict();
    expect(Object.keys(sdB).sort()).toEqual(Object.keys(sdA).sort());
    for (const k of Object.keys(sdA)) expect(sdB[k]!.toArray()).toEqual(sdA[k]!.toArray());
  });

  it('loadStateDict validates names, shapes and dtypes', () => {
    const ps = makeParams();
    const opt = make(ps);
    opt.step(gradsAt(1, ps));
    const sd = opt.stateDict();
    const bufKey = Object.keys(sd).find((k) => k.startsWith('net.b.') && sd[k]!.shape.length === 2)!;
    const fresh = () => make(makeParams());
    expect(() => fresh().loadStateDict({ ...sd, 'c.exp_avg': NDArray.f32([1]) })).toThrow(
      /does not hold|unexpected/,
    );
    expect(() => fresh().loadStateDict({ ...sd, 'a.bogus': NDArray.f32([6]) })).toThrow(
      /unexpected key "a.bogus"/,
    );
    expect(() => fresh().loadStateDict({ ...sd, [bufKey]: NDArray.f32([4]) })).toThrow(/has shape \[4\]/);
    expect(() => fresh().loadStateDict({ ...sd, [bufKey]: NDArray.zeros('float64', [2, 2]) })).toThrow(
      /float32/,
    );
    const { step: _step, ...noStep } = sd;
    expect(() => fresh().loadStateDict(noStep)).toThrow(/missing "step"/);
    try {
      fresh().loadStateDict({ ...sd, [bufKey]: NDArray.f32([4]) });
    } catch (e) {
      expect(e).toBeInstanceOf(ImagenError);
      expect((e as ImagenError).code).toBe('SHAPE_MISMATCH');
    }
  });
});

describe('AdamW state', () => {
  it('requires complete per-parameter state', () => {
    const ps = makeParams();
    const opt = new AdamW(ps, { lr: 0.01 });
    opt.step(gradsAt(1, ps));
    const { 'a.exp_avg_sq': _drop, ...partial } = opt.stateDict();
    expect(() => new AdamW(makeParams(), { lr: 0.01 }).loadStateDict(partial)).toThrow(/needs all of/);
  });

  it('keeps a per-parameter step like torch (bias correction of a late-starting parameter)', () => {
    const ps = makeParams();
    const opt = new AdamW(ps, { lr: 0.01, weightDecay: 0 });
    const [a, b] = ps;
    opt.step(new Map([[a, new Float32Array(6).fill(1)]]));
    opt.step(new Map([[b, Float32Array.from([1, -1, 2, -2])]]));
    const sd = opt.stateDict();
    expect(sd['a.step']!.toArray()).toEqual([1]);
    expect(sd['net.b.step']!.toArray()).toEqual([1]);
    expect(sd.step!.toArray()).toEqual([2]);
    // First bias-corrected Adam step moves each element by lr·sign(g) (up to eps).
    expectClose(b.data, [0.1 - 0.01, -0.2 + 0.01, 0.3 - 0.01, 0.4 + 0.01], 1e-6);
  });
});

describe('clipGradNorm', () => {
  it('matches torch.nn.utils.clip_grad_norm_', () => {
    const ps = makeParams();
    const g = gradsAt(3, ps);
    const total = clipGradNorm(g, 1.0);
    expect(total).toBeCloseTo(REF.clip.total, 6);
    expectClose(g.get(ps[0])!, REF.clip.g1);
    expectClose(g.get(ps[1])!, REF.clip.g2);
  });

  it('leaves gradients untouched when under the limit', () => {
    const ps = makeParams();
    const g = gradsAt(3, ps);
    const before = [...g.values()].map((x) => bits(x.slice()));
    const total = clipGradNorm(g, 100);
    expect(total).toBeCloseTo(REF.clip_noop.total, 6);
    expect([...g.values()].map((x) => bits(x))).toEqual(before);
  });

  it('returns the norm and scales to maxNorm', () => {
    const a = Float32Array.from([3, 0]);
    const b = Float32Array.from([0, 4]);
    const grads: Gradients = new Map([
      [makeParams()[0], a],
      [makeParams()[1], b],
    ]);
    expect(clipGradNorm(grads, 1)).toBe(5);
    const norm = Math.hypot(...a, ...b);
    expect(Math.abs(norm - 1)).toBeLessThan(1e-6);
    expectClose(a, [0.6, 0]);
    expectClose(b, [0, 0.8]);
    // Norm is computed in float64: 1e20 squared overflows float32 but not here.
    const big: Gradients = new Map([[makeParams()[0], Float32Array.from([1e20, 1e20])]]);
    expect(clipGradNorm(big, 1)).toBeCloseTo(Math.SQRT2 * 1e20, -14);
  });

  it('returns a non-finite norm without scaling', () => {
    const g = Float32Array.from([1, Number.POSITIVE_INFINITY, 2]);
    expect(clipGradNorm(new Map([[makeParams()[0], g]]), 1)).toBe(Number.POSITIVE_INFINITY);
    expect(Array.from(g)).toEqual([1, Number.POSITIVE_INFINITY, 2]);
    const n = Float32Array.from([1, Number.NaN]);
    expect(clipGradNorm(new Map([[makeParams()[0], n]]), 1)).toBeNaN();
    expect(n[0]).toBe(1);
  });
});

describe('EMA', () => {
  it('decay schedule matches diffusers EMAModel.get_decay', () => {
    const ema = new EMA([]);
    expectClose(
      [0, 1, 2, 3, 4, 5, 6, 7].map((s) => ema.getDecay(s)),
      REF.ema_decay_default,
      1e-12,
      0,
    );
    const warm = new EMA([], { useWarmup: true, updateAfterStep: 2, minDecay: 0.1, decay: 0.9 });
    expectClose(
      [0, 1, 2, 3, 4, 5, 6, 7].map((s) => warm.getDecay(s)),
      REF.ema_decay_warmup.slice(0, 8),
      1e-12,
      0,
    );
    const long = new EMA([], { useWarmup: true, power: 0.75 });
    expectClose([long.getDecay(1e6)], REF.ema_decay_warmup.slice(8), 1e-12, 0);
    // Hand-checked: step 2 → s = 1 → (1+1)/(10+1); huge steps clamp at decay.
    expect(ema.getDecay(2)).toBe(2 / 11);
    expect(ema.getDecay(1e9)).toBe(0.9999);
  });

  it('update follows shadow ← shadow − (1 − decay)(shadow − param)', () => {
    const [a, unused] = makeParams();
    const ema = new EMA([a], { decay: 0.99, useWarmup: true, power: 0.75 });
    const opt = new SGD([a], { lr: 0.1 });
    for (let k = 1; k <= 5; k++) {
      opt.step(gradsAt(k, [a, unused]));
      ema.update();
      expectClose(ema.shadow(a), REF.ema_hist[k - 1]!);
    }
    expect(ema.optimizationStep).toBe(5);
    expect(ema.curDecay).toBe(ema.getDecay(5));
  });

  it('first update copies, frozen params are copied, copyTo/store/restore work', () => {
    const [a, b] = makeParams();
    b.requiresGrad = false;
    const ema = new EMA([a, b], { decay: 0.5 });
    a.data.fill(2);
    b.data.fill(3);
    ema.update(); // decay 0 → copy
    expect(Array.from(ema.shadow(a))).toEqual([2, 2, 2, 2, 2, 2]);
    a.data.fill(4);
    b.data.fill(5);
    ema.update(); // getDecay(2) = 2/11, clamped to ≤ 0.5
    expect(ema.curDecay).toBe(2 / 11);
    expectClose(ema.shadow(a), new Array(6).fill(2 + (9 / 11) * 2));
    expect(Array.from(ema.shadow(b))).toEqual([5, 5, 5, 5]);

    ema.store();
    ema.copyTo();
    expectClose(a.data, new Array(6).fill(2 + (9 / 11) * 2));
    ema.restore();
    expect(Array.from(a.data)).toEqual([4, 4, 4, 4, 4, 4]);

    // copyTo a separate copy of the model, matched by name.
    const target = new Parameter('a', [6]);
    ema.copyTo([target]);
    expect(bits(target.data)).toEqual(bits(ema.shadow(a)));
    expect(() => ema.copyTo([new Parameter('zzz', [6])])).toThrow(/not tracked/);
    expect(() => ema.copyTo([new Parameter('a', [3], { value: NDArray.f32([3]) })])).toThrow(/shape/);
  });

  it('stateDict/loadStateDict round trip', () => {
    const ps = makeParams();
    const ema = new EMA(ps, { decay: 0.9 });
    for (let k = 1; k <= 3; k++) {
      for (const [p, g] of gradsAt(k, ps)) p.data.set(g);
      ema.update();
    }
    const sd = ema.stateDict();
    expect(Object.keys(sd).sort()).toEqual(['a', 'net.b', 'optimization_step']);
    const other = new EMA(makeParams(), { decay: 0.9 });
    other.loadStateDict(sd);
    expect(other.optimizationStep).toBe(3);
    expect(bits(other.shadow(other.params[1]!))).toEqual(bits(ema.shadow(ps[1])));
    expect(() => other.loadStateDict({ ...sd, extra: NDArray.f32([1]) })).toThrow(/unexpected key "extra"/);
    expect(() => other.loadStateDict({ ...sd, a: NDArray.f32([5]) })).toThrow(/shape/);
  });
});

describe('learning-rate schedules', () => {
  it('constantWithWarmup', () => {
    expect([0, 1, 5, 9, 10, 1000].map((s) => constantWithWarmup(s, { warmupSteps: 10 }))).toEqual([
      0, 0.1, 0.5, 0.9, 1, 1,
    ]);
    expect(constantWithWarmup(0, { warmupSteps: 0 })).toBe(1);
  });

  it('cosineWithWarmup (diffusers num_cycles 0.5)', () => {
    const o = { warmupSteps: 10, totalSteps: 110 };
    expect(cosineWithWarmup(0, o)).toBe(0);
    expect(cosineWithWarmup(5, o)).toBe(0.5);
    expect(cosineWithWarmup(10, o)).toBe(1);
    expect(cosineWithWarmup(60, o)).toBeCloseTo(0.5, 15);
    expect(cosineWithWarmup(35, o)).toBeCloseTo(0.5 * (1 + Math.cos(Math.PI * 0.25)), 15);
    expect(cosineWithWarmup(110, o)).toBeCloseTo(0, 15);
    // Like diffusers, progress is not clamped past totalSteps.
    expect(cosineWithWarmup(160, o)).toBeCloseTo(0.5, 15);
    const floor = { ...o, minRatio: 0.1 };
    expect(cosineWithWarmup(110, floor)).toBeCloseTo(0.1, 15);
    expect(cosineWithWarmup(60, floor)).toBeCloseTo(0.55, 15);
    expect(() => cosineWithWarmup(-1, o)).toThrow(ImagenError);
  });

  it('linearWithWarmup', () => {
    const o = { warmupSteps: 10, totalSteps: 110 };
    expect([0, 5, 10, 60, 110, 200].map((s) => linearWithWarmup(s, o))).toEqual([0, 0.5, 1, 0.5, 0, 0]);
  });
});

describe('toy optimisation', () => {
  // f(x) = Σ c_i (x_i − t_i)², gradient 2 c_i (x_i − t_i).
  const target = [1, -2, 0.5, 3];
  const curv = [1, 4, 0.5, 2];
  function gradOf(x: Float32Array): Float32Array {
    return Float32Array.from(x, (v, i) => 2 * curv[i]! * (v - target[i]!));
  }

  it.each([
    ['AdamW', (p: Parameter) => new AdamW([p], { lr: 0.05, weightDecay: 0 }), 1500],
    ['SGD+momentum', (p: Parameter) => new SGD([p], { lr: 0.02, momentum: 0.9 }), 500],
    ['SGD+nesterov', (p: Parameter) => new SGD([p], { lr: 0.02, momentum: 0.9, nesterov: true }), 500],
  ] as const)('%s minimises a quadratic', (_name, make, steps) => {
    const x = new Parameter('x', [4], { value: NDArray.f32([4], [0, 0, 0, 0]) });
    const opt = make(x);
    const sched = { warmupSteps: 20, totalSteps: steps };
    const baseLr = opt.lr;
    for (let k = 0; k < steps; k++) {
      opt.lr = baseLr * cosineWithWarmup(k, sched);
      const g = new Map([[x, gradOf(x.data)]]);
      clipGradNorm(g, 10);
      opt.step(g);
    }
    expectClose(x.data, target, 0, 1e-3);
  });
});
