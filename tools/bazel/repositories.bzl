"""What another Bazel workspace needs to depend on cowdb.

In the consumer's WORKSPACE, after declaring cowdb itself:

    local_repository(
        name = "cowdb",
        path = "/path/to/cowdb",
    )
    # or http_archive(name = "cowdb", urls = [...], strip_prefix = ...,
    # sha256 = ...), or git_repository(...); any name works.

    load("@cowdb//tools/bazel:repositories.bzl", "cowdb_dependencies")

    cowdb_dependencies()

and in a BUILD file: `deps = ["@cowdb//:cowdb"]`. Build with
`--cxxopt=-std=c++17`, as cowdb's .bazelrc does.

cowdb links Debian's system libraries (RocksDB, Abseil, Protobuf, gRPC;
tools/setup.sh installs them) through //third_party, which needs no
repository. What it does need are the offline stand-ins for the rule
repositories Bazel 4.2.3 would otherwise download (cowdb's own WORKSPACE
declares the same three): @rules_cc, @rules_java and
@remote_coverage_tools, taken from cowdb's third_party/.
"""

# Resolved against this file's repository, so they find cowdb's copy
# whatever the consumer named it and however it was fetched.
_STANDINS = {
    "rules_cc": Label("//third_party/rules_cc:WORKSPACE"),
    "rules_java": Label("//third_party/rules_java:WORKSPACE"),
    "remote_coverage_tools": Label("//third_party/remote_coverage_tools:WORKSPACE"),
}

def _standin_repository_impl(rctx):
    # The repository is the directory holding `workspace_file`, linked
    # entry by entry.
    root = rctx.path(rctx.attr.workspace_file).dirname
    for entry in root.readdir():
        rctx.symlink(entry, entry.basename)

_standin_repository = repository_rule(
    implementation = _standin_repository_impl,
    attrs = {
        "workspace_file": attr.label(
            mandatory = True,
            allow_single_file = True,
            doc = "The WORKSPACE file of a directory under cowdb's third_party/.",
        ),
    },
    local = True,
    doc = "A repository that is a directory of cowdb's source tree.",
)

def cowdb_dependencies():
    """Declares the repositories cowdb's targets need.

    Call it in the WORKSPACE of a workspace that depends on cowdb, after the
    repository rule that declares cowdb. A name the WORKSPACE has already
    declared is left alone.
    """
    for name, workspace_file in _STANDINS.items():
        if not native.existing_rule(name):
            _standin_repository(
                name = name,
                workspace_file = workspace_file,
            )
