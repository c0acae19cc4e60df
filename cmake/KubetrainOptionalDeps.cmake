# Resolves KUBETRAIN_WITH_MPI / KUBETRAIN_WITH_CUDA (AUTO, ON, OFF) into KUBETRAIN_HAVE_MPI /
# KUBETRAIN_HAVE_CUDA. ON fails the configure when the dependency is missing; AUTO uses it when found.

set(KUBETRAIN_HAVE_MPI OFF)
if(NOT KUBETRAIN_WITH_MPI STREQUAL "OFF")
  if(KUBETRAIN_WITH_MPI STREQUAL "ON")
    find_package(MPI REQUIRED COMPONENTS C)
  else()
    find_package(MPI QUIET COMPONENTS C)
  endif()
  if(MPI_C_FOUND)
    set(KUBETRAIN_HAVE_MPI ON)
    find_program(KUBETRAIN_MPIRUN NAMES mpirun mpiexec)
  endif()
endif()

# The project virtual environment made by scripts/setup-deps.sh: the Python peers the tests drive
# (azure-ai-ml, azure-storage-blob, mlflow) and CUDA + NCCL from NVIDIA's wheels, laid out as a
# toolkit root in ${KUBETRAIN_VENV}/cuda. Tests get it as the KUBETRAIN_VENV environment variable.
set(KUBETRAIN_VENV "${PROJECT_SOURCE_DIR}/.deps/venv" CACHE PATH
    "The project virtual environment (scripts/setup-deps.sh): Python test peers, CUDA/NCCL wheels")
set(KUBETRAIN_VENV_PYTHON "${KUBETRAIN_VENV}/bin/python")

set(KUBETRAIN_HAVE_CUDA OFF)
set(KUBETRAIN_CUDA_SUMMARY "OFF (KUBETRAIN_WITH_CUDA=OFF)")
if(NOT KUBETRAIN_WITH_CUDA STREQUAL "OFF")
  # The venv's toolkit (NVIDIA's wheels) first, then a system toolkit (the CUDA images).
  if(NOT DEFINED CUDAToolkit_ROOT)
    if(EXISTS "${KUBETRAIN_VENV}/cuda/bin/nvcc")
      set(CUDAToolkit_ROOT "${KUBETRAIN_VENV}/cuda")
    elseif(EXISTS /usr/local/cuda)
      set(CUDAToolkit_ROOT /usr/local/cuda)
    endif()
  endif()
  # CMake 3.25.1 (Debian 12) marks CUDA::nvToolsExt deprecated without checking that the library
  # was found, and toolkits since CUDA 12 have none ("set_property could not find TARGET
  # CUDA::nvToolsExt"): an empty stand-in keeps FindCUDAToolkit going. Nothing here links it.
  if(CMAKE_VERSION VERSION_LESS 3.25.2 AND NOT TARGET CUDA::nvToolsExt)
    add_library(CUDA::nvToolsExt INTERFACE IMPORTED)
  endif()
  if(KUBETRAIN_WITH_CUDA STREQUAL "ON")
    find_package(CUDAToolkit REQUIRED)
  else()
    find_package(CUDAToolkit QUIET)
  endif()
  set(KUBETRAIN_CUDA_SUMMARY
      "OFF (no CUDA toolkit found: run scripts/setup-deps.sh, or set CUDAToolkit_ROOT)")
  if(CUDAToolkit_FOUND)
    find_path(NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS} /usr/include)
    find_library(NCCL_LIBRARY nccl HINTS ${CUDAToolkit_LIBRARY_DIR} /usr/lib/x86_64-linux-gnu)
    if(NCCL_INCLUDE_DIR AND NCCL_LIBRARY)
      set(KUBETRAIN_HAVE_CUDA ON)
      add_library(kubetrain_nccl INTERFACE)
      target_include_directories(kubetrain_nccl INTERFACE ${NCCL_INCLUDE_DIR})
      target_link_libraries(kubetrain_nccl INTERFACE ${NCCL_LIBRARY} CUDA::cudart)
      add_library(kubetrain::nccl ALIAS kubetrain_nccl)
      set(KUBETRAIN_CUDA_SUMMARY
          "ON (nvcc ${CUDAToolkit_VERSION} from ${CUDAToolkit_NVCC_EXECUTABLE})")
      message(STATUS "kubetrain: NCCL ${NCCL_LIBRARY}, headers ${NCCL_INCLUDE_DIR}")
    elseif(KUBETRAIN_WITH_CUDA STREQUAL "ON")
      message(FATAL_ERROR "KUBETRAIN_WITH_CUDA=ON but nccl.h / libnccl were not found")
    else()
      set(KUBETRAIN_CUDA_SUMMARY "OFF (CUDA ${CUDAToolkit_VERSION} found but no nccl.h / libnccl)")
    endif()
  endif()
endif()
