//! `zig build` builds the library, `zig build dev` copies it into arrowtok/ (editable installs),
//! `zig build test` runs the Zig unit tests. pip builds through hatch_build.py (zig build-lib),
//! which needs no build runner; keep the two in step.
const std = @import("std");

pub fn build(b: *std.Build) void {
    const target = b.standardTargetOptions(.{});
    const optimize = b.standardOptimizeOption(.{});
    const mod = b.createModule(.{
        .root_source_file = b.path("zig/root.zig"),
        .target = target,
        .optimize = optimize,
        .link_libc = true,
        .strip = optimize != .debug,
    });
    const lib = b.addLibrary(.{ .name = "arrowtok", .linkage = .dynamic, .root_module = mod });
    b.installArtifact(lib);

    const usf = b.addUpdateSourceFiles();
    usf.addCopyFileToSource(lib.getEmittedBin(), "arrowtok/libarrowtok.so");
    b.step("dev", "copy the library into arrowtok/").dependOn(&usf.step);

    const tests = b.addTest(.{ .root_module = mod });
    b.step("test", "Run the Zig unit tests").dependOn(&b.addRunArtifact(tests).step);
}
