# gpuhub_warnings(target): the project's warning set, as errors.
function(gpuhub_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Werror -Wshadow
                                           -Wnon-virtual-dtor -Wold-style-cast -Wcast-align
                                           -Wnull-dereference -Wimplicit-fallthrough
                                           -Wno-missing-field-initializers)
endfunction()
