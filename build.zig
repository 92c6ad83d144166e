const std = @import("std");

// One source root, zig-src/lib.zig, the only file with exports. Built twice:
//  - for the host as libairllm.so (the CPU backend, loaded with bun:ffi);
//  - for nvptx64-cuda as PTX text (the CUDA kernels, loaded with cuModuleLoadData).
pub fn build(b: *std.Build) void {
    // x86-64-v3 (AVX2, FMA, F16C) by default: fast on any machine of the last decade and
    // portable to the GPU hosts the binary is carried to. Override with -Dtarget / -Dcpu.
    const target = b.standardTargetOptions(.{ .default_target = .{
        .cpu_arch = .x86_64,
        .os_tag = .linux,
        .abi = .gnu,
        .cpu_model = .{ .explicit = &std.Target.x86.cpu.x86_64_v3 },
    } });
    const optimize = b.standardOptimizeOption(.{});

    const cpu_mod = b.createModule(.{
        .root_source_file = b.path("zig-src/lib.zig"),
        .target = target,
        .optimize = optimize,
        .link_libc = true,
    });
    const lib = b.addLibrary(.{ .linkage = .dynamic, .name = "airllm", .root_module = cpu_mod });
    b.installArtifact(lib);

    // The CUDA kernels as PTX text (zig-out/ptx/airllm.ptx), part of the default install.
    // sm_80 is the oldest GPU with bf16 mma.sync; the driver JIT-compiles the PTX forward to
    // newer GPUs (sm_90 on H100). LLVM emits PTX as assembly, so only the asm output exists.
    const ptx_obj = b.addObject(.{
        .name = "airllm",
        .root_module = b.createModule(.{
            .root_source_file = b.path("zig-src/lib.zig"),
            .target = b.resolveTargetQuery(.{
                .cpu_arch = .nvptx64,
                .os_tag = .cuda,
                .cpu_model = .{ .explicit = &std.Target.nvptx.cpu.sm_80 },
            }),
            // Kernels are always built fast: Debug/ReleaseSafe PTX would add safety checks
            // (traps) and local-memory stack frames to every kernel.
            .optimize = .ReleaseFast,
        }),
    });
    b.getInstallStep().dependOn(&b.addInstallFile(ptx_obj.getEmittedAsm(), "ptx/airllm.ptx").step);

    const tests = b.addTest(.{ .root_module = cpu_mod });
    const run_tests = b.addRunArtifact(tests);
    b.step("test", "Run the Zig unit tests").dependOn(&run_tests.step);
}
