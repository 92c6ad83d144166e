// The Euclidean norm of every row of a weight matrix as the files store it, for the architectures
// that normalize rows at load (Baichuan2's NormHead). The rows are read from the file in slices of
// a few MiB into one host buffer (never through the mapping: its pages would count in the
// process's RSS, which a --max-memory budget bounds), dequantized when the split stores them
// compressed, and summed in f64 by the native library.
import { DTYPE_CODE, isQuantized } from "../backend/backend.ts";
import { asPtr, check, cpuLibrary } from "../backend/cpu/native.ts";
import { ReadAhead } from "../engine/read-ahead.ts";
import type { HostTensor } from "../engine/tensor-source.ts";
import { rowAlign, rowRange } from "../engine/units.ts";
import { NativeError } from "../errors.ts";

/** Bytes of one slice: rows in flight between the file and the sums. */
const SLICE_BYTES = 8 << 20;

export function rowNorms(t: HostTensor): Float32Array {
  if (t.shape.length !== 2) throw new Error(`internal: rowNorms of ${t.name}, shape [${t.shape}], which is not a matrix`);
  const [rows, cols] = t.shape as [number, number];
  const lib = cpuLibrary();
  const quantized = isQuantized(t.dtype);
  const step = rowAlign(t.dtype, cols);
  const groupBytes = rowRange(t, 0, Math.min(step, rows)).bytes;
  const sliceRows = Math.min(rows, Math.max(step, Math.floor(SLICE_BYTES / groupBytes) * step));
  const raw = rowRange(t, 0, sliceRows).bytes + 64;
  const floats = quantized ? sliceRows * cols * 4 : 0;
  const decoded = Math.ceil(raw / 64) * 64;
  const sumsAt = decoded + floats;
  const buf = Number(lib.airllm_alloc(sumsAt + sliceRows * 4) ?? 0);
  if (buf === 0) throw new NativeError(`airllm_alloc(${sumsAt + sliceRows * 4}) returned null reading the rows of ${t.name}`, "not enough host memory");
  const sums = buf + sumsAt;
  const norms = new Float32Array(new ArrayBuffer(rows * 4));
  const slice = new Float32Array(new ArrayBuffer(sliceRows * 4));
  const reader = new ReadAhead(1);
  try {
    for (let r0 = 0; r0 < rows; r0 += sliceRows) {
      const n = Math.min(sliceRows, rows - r0);
      const range = rowRange(t, r0, n);
      reader.wait(reader.submit(t.file, t.fileOffset + range.srcOffset, range.bytes, buf));
      let src = buf;
      if (quantized) {
        check(lib.airllm_dequantize(DTYPE_CODE[t.dtype], asPtr(buf), asPtr(buf + decoded), n * cols), "airllm_dequantize", `${t.name}: ${t.dtype}, ${n} rows of ${cols}`);
        src = buf + decoded;
      }
      const dtype = quantized ? "f32" : t.dtype;
      check(lib.airllm_row_norms(asPtr(sums), asPtr(src), DTYPE_CODE[dtype], n, cols), "airllm_row_norms", `${t.name}: ${n} rows of ${cols}`);
      lib.airllm_memcpy(slice, asPtr(sums), n * 4);
      norms.set(slice.subarray(0, n), r0);
    }
  } finally {
    reader.destroy();
    lib.airllm_free(asPtr(buf));
  }
  return norms;
}
