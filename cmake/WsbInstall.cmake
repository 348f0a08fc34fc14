# `cmake --install` (and `make install PREFIX=... DESTDIR=...`): the broker,
# wsbroker-cli, wsbench, the C client library (one static archive with the
# protocol code it needs) with its headers and wsbroker-client.pc, the JS
# client, man pages made from --help (tools/help2man.c), the example config
# and the hardened systemd unit (deploy/systemd).
include(GNUInstallDirs)
set(WSB_SYSTEMD_UNITDIR "lib/systemd/system" CACHE STRING
  "Where the systemd unit goes, relative to the prefix")

# The client library: every object it needs in one archive, so that a
# program links with -lwsbroker-client and the system libraries of the .pc.
set(wsb_client_objects $<TARGET_OBJECTS:wsb_client> $<TARGET_OBJECTS:wsb_client_core>
  $<TARGET_OBJECTS:wsb_tls_client> $<TARGET_OBJECTS:wsb_protocol>)
set(WSB_PC_LIBS "")
if(TARGET wsb_llhttp)
  list(APPEND wsb_client_objects $<TARGET_OBJECTS:wsb_llhttp>)
else()
  set(WSB_PC_LIBS "-lllhttp")
endif()
add_library(wsbroker_client_archive STATIC ${wsb_client_objects})
set_target_properties(wsbroker_client_archive PROPERTIES OUTPUT_NAME wsbroker-client
  LINKER_LANGUAGE C)
configure_file(${PROJECT_SOURCE_DIR}/clients/c/wsbroker-client.pc.in
  ${PROJECT_BINARY_DIR}/wsbroker-client.pc @ONLY)

set(WSB_FULL_BINDIR ${CMAKE_INSTALL_FULL_BINDIR})
set(WSB_FULL_SYSCONFDIR ${CMAKE_INSTALL_FULL_SYSCONFDIR})
set(WSB_FULL_DOCDIR ${CMAKE_INSTALL_FULL_DOCDIR})
configure_file(${PROJECT_SOURCE_DIR}/deploy/systemd/wsbroker.service.in
  ${PROJECT_BINARY_DIR}/deploy/wsbroker.service @ONLY)

# Man pages from the programs' own --help: one text, never a second copy.
add_executable(wsb_help2man ${PROJECT_SOURCE_DIR}/tools/help2man.c)
target_link_libraries(wsb_help2man PRIVATE wsb_warnings)
set(WSB_MAN_DIR ${PROJECT_BINARY_DIR}/man)
add_custom_command(OUTPUT ${WSB_MAN_DIR}/wsbroker.1
  COMMAND ${CMAKE_COMMAND} -E make_directory ${WSB_MAN_DIR}
  COMMAND wsb_help2man $<TARGET_FILE:wsbroker> wsbroker 1 ${PROJECT_VERSION}
          "pub/sub WebSocket broker" ${WSB_MAN_DIR}/wsbroker.1
  DEPENDS wsbroker wsb_help2man COMMENT "Man page wsbroker(1) from wsbroker --help")
add_custom_command(OUTPUT ${WSB_MAN_DIR}/wsbroker-cli.1
  COMMAND ${CMAKE_COMMAND} -E make_directory ${WSB_MAN_DIR}
  COMMAND wsb_help2man $<TARGET_FILE:wsbroker-cli> wsbroker-cli 1 ${PROJECT_VERSION}
          "publish to and subscribe on a wsbroker from the shell" ${WSB_MAN_DIR}/wsbroker-cli.1
  DEPENDS wsbroker-cli wsb_help2man COMMENT "Man page wsbroker-cli(1) from wsbroker-cli --help")
add_custom_target(wsb_man ALL DEPENDS ${WSB_MAN_DIR}/wsbroker.1 ${WSB_MAN_DIR}/wsbroker-cli.1)

install(TARGETS wsbroker-cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
if(TARGET wsbench)
  install(TARGETS wsbench RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()
install(TARGETS wsbroker_client_archive ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/clients/c/include/wsb ${PROJECT_SOURCE_DIR}/protocol/include/wsb
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} FILES_MATCHING PATTERN "*.h")
install(FILES ${PROJECT_BINARY_DIR}/wsbroker-client.pc
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
install(FILES ${PROJECT_SOURCE_DIR}/clients/js/wsbroker.js ${PROJECT_SOURCE_DIR}/clients/js/wsbroker.d.ts
  ${PROJECT_SOURCE_DIR}/clients/js/package.json ${PROJECT_SOURCE_DIR}/clients/js/README.md
  DESTINATION ${CMAKE_INSTALL_DATADIR}/wsbroker/js)
install(FILES ${WSB_MAN_DIR}/wsbroker.1 ${WSB_MAN_DIR}/wsbroker-cli.1
  DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
install(FILES ${PROJECT_SOURCE_DIR}/wsbroker.example.json DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES ${PROJECT_SOURCE_DIR}/clients/c/examples/hello.c
  DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
install(FILES ${PROJECT_BINARY_DIR}/deploy/wsbroker.service DESTINATION ${WSB_SYSTEMD_UNITDIR})

if(BUILD_TESTING)
  # Installs into a temporary DESTDIR, builds clients/c/examples/hello.c there
  # with pkg-config and runs it against the installed broker; checks the man
  # pages and the unit (systemd-analyze verify).
  add_test(NAME deploy.install
    COMMAND /usr/bin/python3 -m pytest -q -p no:cacheprovider ${PROJECT_SOURCE_DIR}/tests/install)
  set_tests_properties(deploy.install PROPERTIES LABELS deploy TIMEOUT 300
    ENVIRONMENT "WSB_BUILD_DIR=${PROJECT_BINARY_DIR}")
endif()
