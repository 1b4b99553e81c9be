"""Generates C++ protobuf and gRPC code with Debian's protoc and plugin.

Bazel cannot fetch rules_proto or gRPC's Bazel rules offline, so a genrule
runs the system `protoc` with `grpc_cpp_plugin` and a cc_library wraps the
output.
"""

def cc_grpc_proto(name, src = None, srcs = [], deps = [], visibility = None):
    """A cc_library `name` with the messages and services of `srcs`.

    Args:
      name: the library's name.
      src: one .proto file in this package (or use srcs).
      srcs: .proto files in this package that import each other by their
        paths from this package.
      deps: extra cc deps.
      visibility: the library's visibility.
    """
    if src:
        srcs = srcs + [src]
    outs = []
    for s in srcs:
        base = s[:-len(".proto")]
        outs += [
            base + ".pb.h",
            base + ".pb.cc",
            base + ".grpc.pb.h",
            base + ".grpc.pb.cc",
        ]

    # The package's directory in the execution root: under external/<name>/
    # when cowdb is another workspace's external repository.
    repo = native.repository_name()
    root = "" if repo == "@" else "external/" + repo[1:]
    package_dir = "/".join([d for d in [root, native.package_name()] if d]) or "."
    native.genrule(
        name = name + "_gen",
        srcs = srcs,
        outs = outs,
        cmd = " ".join([
            "protoc",
            "--proto_path=" + package_dir,
            "--cpp_out=$(RULEDIR)",
            "--grpc_out=$(RULEDIR)",
            "--plugin=protoc-gen-grpc=$$(command -v grpc_cpp_plugin)",
        ] + ["$(location %s)" % s for s in srcs]),
    )
    native.cc_library(
        name = name,
        srcs = [o for o in outs if o.endswith(".cc")],
        hdrs = [o for o in outs if o.endswith(".h")],
        # The generated code includes itself by its path in this package.
        includes = ["."],
        deps = deps + ["//third_party:grpc"],
        visibility = visibility,
    )
