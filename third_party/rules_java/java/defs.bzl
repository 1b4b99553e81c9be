"""Re-exports Bazel's native Java rules (offline stand-in for @rules_java).

Nothing here builds Java; Bazel only parses its Java toolchain definitions.
"""

java_binary = native.java_binary
java_import = native.java_import
java_library = native.java_library
java_runtime = native.java_runtime
java_toolchain = native.java_toolchain
java_test = native.java_test
