;; AdamW's element loop (torch.optim.AdamW, foreach=False), four lanes at a time.
;; Every operation is one IEEE single-precision op in the same order as the JS loop in optim.ts, so
;; the result is bit-identical to it (float64 then round-to-float32, as the JS loop computes, is
;; exact for +, −, ×, ÷ and √ of float32 operands). Rebuild src/train/wasm/adamw_bytes.ts with
;; `node scripts/build-wasm.mjs` after editing.
(module
  (memory (export "memory") 1)
  ;; x ← x·decay; m ← m + w1·(g − m); v ← v·b2 + (w2·g)·g;
  ;; x ← x − (stepSize·m) / (√v / bc2Sqrt + eps). Byte offsets; x, g, m, v 16-byte aligned.
  (func (export "adamw")
    (param $x i32) (param $g i32) (param $m i32) (param $v i32) (param $n i32)
    (param $decay f32) (param $w1 f32) (param $b2 f32) (param $w2 f32) (param $eps f32)
    (param $stepSize f32) (param $bc2Sqrt f32)
    (local $i i32) (local $end i32) (local $o i32)
    (local $vd v128) (local $vw1 v128) (local $vb2 v128) (local $vw2 v128) (local $veps v128)
    (local $vstep v128) (local $vbc2 v128)
    (local $gi v128) (local $mi v128) (local $vi v128) (local $xi v128)
    (local $sg f32) (local $sm f32) (local $sv f32) (local $sx f32)
    (local.set $vd (f32x4.splat (local.get $decay)))
    (local.set $vw1 (f32x4.splat (local.get $w1)))
    (local.set $vb2 (f32x4.splat (local.get $b2)))
    (local.set $vw2 (f32x4.splat (local.get $w2)))
    (local.set $veps (f32x4.splat (local.get $eps)))
    (local.set $vstep (f32x4.splat (local.get $stepSize)))
    (local.set $vbc2 (f32x4.splat (local.get $bc2Sqrt)))
    (local.set $end (i32.and (local.get $n) (i32.const -4)))
    (block $done
      (loop $lanes
        (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
        (local.set $o (i32.shl (local.get $i) (i32.const 2)))
        (local.set $gi (v128.load (i32.add (local.get $g) (local.get $o))))
        (local.set $xi (f32x4.mul (v128.load (i32.add (local.get $x) (local.get $o))) (local.get $vd)))
        (local.set $mi (v128.load (i32.add (local.get $m) (local.get $o))))
        (local.set $mi
          (f32x4.add (local.get $mi)
            (f32x4.mul (local.get $vw1) (f32x4.sub (local.get $gi) (local.get $mi)))))
        (local.set $vi
          (f32x4.add
            (f32x4.mul (v128.load (i32.add (local.get $v) (local.get $o))) (local.get $vb2))
            (f32x4.mul (f32x4.mul (local.get $vw2) (local.get $gi)) (local.get $gi))))
        (v128.store (i32.add (local.get $m) (local.get $o)) (local.get $mi))
        (v128.store (i32.add (local.get $v) (local.get $o)) (local.get $vi))
        (v128.store (i32.add (local.get $x) (local.get $o))
          (f32x4.sub (local.get $xi)
            (f32x4.div
              (f32x4.mul (local.get $vstep) (local.get $mi))
              (f32x4.add
                (f32x4.div (f32x4.sqrt (local.get $vi)) (local.get $vbc2))
                (local.get $veps)))))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $lanes)))
    ;; the last n mod 4 elements, one at a time
    (block $tailDone
      (loop $tail
        (br_if $tailDone (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $o (i32.shl (local.get $i) (i32.const 2)))
        (local.set $sg (f32.load (i32.add (local.get $g) (local.get $o))))
        (local.set $sx (f32.mul (f32.load (i32.add (local.get $x) (local.get $o))) (local.get $decay)))
        (local.set $sm (f32.load (i32.add (local.get $m) (local.get $o))))
        (local.set $sm
          (f32.add (local.get $sm)
            (f32.mul (local.get $w1) (f32.sub (local.get $sg) (local.get $sm)))))
        (local.set $sv
          (f32.add
            (f32.mul (f32.load (i32.add (local.get $v) (local.get $o))) (local.get $b2))
            (f32.mul (f32.mul (local.get $w2) (local.get $sg)) (local.get $sg))))
        (f32.store (i32.add (local.get $m) (local.get $o)) (local.get $sm))
        (f32.store (i32.add (local.get $v) (local.get $o)) (local.get $sv))
        (f32.store (i32.add (local.get $x) (local.get $o))
          (f32.sub (local.get $sx)
            (f32.div
              (f32.mul (local.get $stepSize) (local.get $sm))
              (f32.add
                (f32.div (f32.sqrt (local.get $sv)) (local.get $bc2Sqrt))
                (local.get $eps)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $tail)))))
