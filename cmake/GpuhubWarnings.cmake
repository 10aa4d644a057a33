# gpuhub_warnings(target): the project's warning set, as errors.
#
# Left out on purpose: -Wnull-dereference and -Wmismatched-new-delete, which
# GCC 12 at -O2 reports falsely inside Boost.Asio's scheduler and for the
# frames of Asio coroutines (the release build would not compile).
function(gpuhub_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Werror -Wshadow
                                           -Wnon-virtual-dtor -Wold-style-cast -Wcast-align
                                           -Wimplicit-fallthrough
                                           -Wno-missing-field-initializers
                                           -Wno-mismatched-new-delete)
endfunction()
