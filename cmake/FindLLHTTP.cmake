# FindLLHTTP - provides the imported target LLHTTP::llhttp.
#
# A system libllhttp (pkg-config "libllhttp", or llhttp.h + libllhttp) is used
# when present. Otherwise the C sources that Debian's node-llhttp package ships
# (/usr/share/llhttp/{llhttp,api,http}.c with /usr/share/include/llhttp/llhttp.h)
# are compiled into a static library here, without our strict warnings: the
# code is generated and not ours to fix.
#
# Hints: LLHTTP_SOURCE_DIR, LLHTTP_INCLUDE_DIR.

find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(PC_LLHTTP QUIET IMPORTED_TARGET libllhttp)
endif()

if(PC_LLHTTP_FOUND)
  add_library(LLHTTP::llhttp ALIAS PkgConfig::PC_LLHTTP)
  set(LLHTTP_FOUND TRUE)
  set(LLHTTP_VERSION ${PC_LLHTTP_VERSION})
else()
  find_path(LLHTTP_SYS_INCLUDE llhttp.h PATHS /usr/include /usr/local/include NO_CACHE)
  find_library(LLHTTP_SYS_LIB llhttp NO_CACHE)
  if(LLHTTP_SYS_INCLUDE AND LLHTTP_SYS_LIB)
    add_library(LLHTTP::llhttp UNKNOWN IMPORTED)
    set_target_properties(LLHTTP::llhttp PROPERTIES IMPORTED_LOCATION ${LLHTTP_SYS_LIB}
      INTERFACE_INCLUDE_DIRECTORIES ${LLHTTP_SYS_INCLUDE})
    set(LLHTTP_FOUND TRUE)
  else()
    find_path(LLHTTP_INCLUDE_DIR llhttp.h
      HINTS ${LLHTTP_INCLUDE_DIR} PATHS /usr/share/include/llhttp /usr/include/llhttp)
    find_path(LLHTTP_SOURCE_DIR llhttp.c
      HINTS ${LLHTTP_SOURCE_DIR} PATHS /usr/share/llhttp)
    if(LLHTTP_INCLUDE_DIR AND LLHTTP_SOURCE_DIR
       AND EXISTS ${LLHTTP_SOURCE_DIR}/api.c AND EXISTS ${LLHTTP_SOURCE_DIR}/http.c)
      add_library(wsb_llhttp STATIC
        ${LLHTTP_SOURCE_DIR}/llhttp.c ${LLHTTP_SOURCE_DIR}/api.c ${LLHTTP_SOURCE_DIR}/http.c)
      target_include_directories(wsb_llhttp SYSTEM PUBLIC ${LLHTTP_INCLUDE_DIR})
      set_target_properties(wsb_llhttp PROPERTIES POSITION_INDEPENDENT_CODE ON C_EXTENSIONS ON)
      target_compile_options(wsb_llhttp PRIVATE -w)
      add_library(LLHTTP::llhttp ALIAS wsb_llhttp)
      set(LLHTTP_FOUND TRUE)
    endif()
  endif()
  if(LLHTTP_FOUND AND NOT LLHTTP_VERSION)
    foreach(dir ${LLHTTP_INCLUDE_DIR} ${LLHTTP_SYS_INCLUDE})
      if(EXISTS ${dir}/llhttp.h)
        file(STRINGS ${dir}/llhttp.h _v REGEX "#define LLHTTP_VERSION_(MAJOR|MINOR|PATCH)")
        string(REGEX REPLACE ".*MAJOR ([0-9]+).*MINOR ([0-9]+).*PATCH ([0-9]+).*" "\\1.\\2.\\3"
          LLHTTP_VERSION "${_v}")
      endif()
    endforeach()
  endif()
endif()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(LLHTTP REQUIRED_VARS LLHTTP_FOUND VERSION_VAR LLHTTP_VERSION
  FAIL_MESSAGE "llhttp not found: install Debian's node-llhttp (C sources) or a libllhttp")
