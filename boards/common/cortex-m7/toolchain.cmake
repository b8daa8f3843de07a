# Cross toolchain for the Cortex-M7 boards with the F746's single-precision FPU
# (QEMU's M7 has a double-precision one; building for fpv5-sp-d16 keeps the
# image valid on the real chip). A board uses it by naming "cortex-m7" in its
# board.json "common" list.
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)

find_program(MEDYATE_ARM_GCC arm-none-eabi-gcc)
if(NOT MEDYATE_ARM_GCC)
  message(FATAL_ERROR "arm-none-eabi-gcc not found: install the Debian packages "
                      "gcc-arm-none-eabi and libnewlib-arm-none-eabi")
endif()
set(CMAKE_C_COMPILER arm-none-eabi-gcc)
set(CMAKE_ASM_COMPILER arm-none-eabi-gcc)
set(CMAKE_OBJCOPY arm-none-eabi-objcopy CACHE FILEPATH "objcopy")
set(CMAKE_SIZE arm-none-eabi-size CACHE FILEPATH "size")
# The compiler check would try to link a hosted program.
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)

set(MEDYATE_CPU_FLAGS "-mcpu=cortex-m7 -mthumb -mfpu=fpv5-sp-d16 -mfloat-abi=hard")
set(CMAKE_C_FLAGS_INIT "${MEDYATE_CPU_FLAGS}")
set(CMAKE_ASM_FLAGS_INIT "${MEDYATE_CPU_FLAGS}")
set(CMAKE_EXE_LINKER_FLAGS_INIT "${MEDYATE_CPU_FLAGS} -specs=nano.specs -specs=nosys.specs")

set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
