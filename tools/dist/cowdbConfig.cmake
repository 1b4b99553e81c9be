# cowdb's CMake package: find_package(cowdb) then link cowdb::cowdb (the
# shared library) or cowdb::cowdb_static. The system libraries come from
# Debian's packages, found with pkg-config (tools/setup.sh installs them).
include(CMakeFindDependencyMacro)
find_dependency(PkgConfig)
pkg_check_modules(COWDB_DEPS REQUIRED IMPORTED_TARGET
    absl_status absl_statusor absl_strings absl_str_format absl_time absl_synchronization
    absl_flat_hash_map absl_hash absl_cord grpc++ protobuf libcrypto)

get_filename_component(_cowdb_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)

add_library(cowdb::cowdb SHARED IMPORTED)
set_target_properties(cowdb::cowdb PROPERTIES
    IMPORTED_LOCATION "${_cowdb_prefix}/lib/libcowdb.so"
    INTERFACE_INCLUDE_DIRECTORIES "${_cowdb_prefix}/include/cowdb"
    INTERFACE_COMPILE_FEATURES cxx_std_17
    INTERFACE_LINK_LIBRARIES PkgConfig::COWDB_DEPS)

add_library(cowdb::cowdb_static STATIC IMPORTED)
set_target_properties(cowdb::cowdb_static PROPERTIES
    IMPORTED_LOCATION "${_cowdb_prefix}/lib/libcowdb.a"
    INTERFACE_INCLUDE_DIRECTORIES "${_cowdb_prefix}/include/cowdb"
    INTERFACE_COMPILE_FEATURES cxx_std_17
    INTERFACE_LINK_LIBRARIES "PkgConfig::COWDB_DEPS;rocksdb;rados;xxhash;pthread")
unset(_cowdb_prefix)
