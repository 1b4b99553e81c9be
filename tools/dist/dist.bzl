"""cowdb's libraries for builds outside Bazel (//:dist)."""

def _bundle_impl(ctx):
    # Every static library the targets link that this workspace builds
    # (system libraries come in as linker flags, not files), in PIC form.
    archives = []
    seen = {}
    flags = []
    for dep in ctx.attr.deps:
        for linker_input in dep[CcInfo].linking_context.linker_inputs.to_list():
            for flag in linker_input.user_link_flags:
                if flag not in flags:
                    flags.append(flag)
            for lib in linker_input.libraries:
                a = lib.pic_static_library
                if a == None:
                    if lib.static_library == None:
                        continue
                    fail("no PIC archive of %s: build //:dist on Linux (fastbuild or -c opt)" %
                         lib.static_library.short_path)
                if a.path not in seen:
                    seen[a.path] = True
                    archives.append(a)
    static = ctx.actions.declare_file(ctx.attr.name + ".a")
    shared = ctx.actions.declare_file(ctx.attr.name + ".so")

    # One archive, merged with ar's MRI script.
    script = "\n".join(["create " + static.path] + ["addlib " + a.path for a in archives] +
                       ["save", "end"])
    ctx.actions.run_shell(
        inputs = archives,
        outputs = [static],
        command = "printf '%s\\n' \"$1\" | ar -M",
        arguments = [script],
        mnemonic = "StaticBundle",
        progress_message = "Bundling %d archives into %s" % (len(archives), static.short_path),
    )

    # The shared library: every object of that archive, linked against the
    # system libraries the targets name.
    ctx.actions.run(
        inputs = [static],
        outputs = [shared],
        executable = "clang++",
        arguments = ["-shared", "-o", shared.path, "-Wl,-soname,libcowdb.so",
                     "-Wl,--whole-archive", static.path, "-Wl,--no-whole-archive"] + flags,
        mnemonic = "SharedBundle",
        progress_message = "Linking %s" % shared.short_path,
        use_default_shell_env = True,
    )
    return [DefaultInfo(files = depset([static, shared]))]

library_bundle = rule(
    implementation = _bundle_impl,
    attrs = {
        "deps": attr.label_list(providers = [CcInfo]),
    },
    doc = "<name>.a and <name>.so holding the workspace's own code of `deps`.",
)
