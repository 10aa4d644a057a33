# With GPUHUB_SANITIZE every target is built with ASan and UBSan; any UB report aborts.
if(GPUHUB_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=all
                      -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()
if(GPUHUB_FUZZ)
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all
                      -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()
if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  # Boost 1.74 does not detect clang's coroutine support by itself.
  add_compile_definitions(BOOST_ASIO_HAS_CO_AWAIT=1)
endif()
