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

    const tests = b.addTest(.{ .root_module = cpu_mod });
    const run_tests = b.addRunArtifact(tests);
    b.step("test", "Run the Zig unit tests").dependOn(&run_tests.step);
}
