//! The only file with exports. Compiled for the host it is the CPU backend (libairllm.so,
//! loaded with bun:ffi); compiled for nvptx64-cuda it is the PTX module of the CUDA backend.
//! Every export is a flat C ABI function; op implementations live one family per file.
const builtin = @import("builtin");

const is_ptx = builtin.cpu.arch == .nvptx64;

comptime {
    if (is_ptx) {
        // ---- CUDA kernels (nvptx64) ----
    } else {
        // ---- CPU backend (host) ----
    }
}
