// `ggufscope doctor`: is it the file or the kernel? One verdict with its evidence.
#pragma once

#include <CLI/CLI.hpp>

#include "compare/doctor.h"

namespace ggufscope::cli {

struct DoctorCliOptions {
  compare::DoctorOptions doctor;
  bool json = false;
};

CLI::App* AddDoctorCommand(CLI::App& app, DoctorCliOptions* opt);
int RunDoctor(const DoctorCliOptions& opt);

}  // namespace ggufscope::cli
