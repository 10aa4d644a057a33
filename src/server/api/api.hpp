// The REST API of gpuhubd: registers every route on a Router.
//
// Handlers only translate between HTTP/JSON and the domain (Accounts,
// MachineRegistry, ContainerService, TaskService);
// ErrorResponse is the one place where domain errors become statuses. Heavy
// work (argon2id, photo files) runs on the worker pool. Everything referenced
// by ApiDeps must outlive the router.
#pragma once

#include <boost/asio/thread_pool.hpp>
#include <functional>

#include "common/clock.hpp"
#include "server/accounts/accounts.hpp"
#include "server/containers/service.hpp"
#include "server/tasks/service.hpp"
#include "server/http/router.hpp"
#include "server/http/server.hpp"
#include "server/machines/registry.hpp"

namespace gpuhub::api {

struct ApiDeps {
  accounts::Accounts& accounts;
  machines::MachineRegistry& machines;
  containers::ContainerService* containers;
  tasks::TaskService* tasks;
  boost::asio::thread_pool& pool;
  const Clock& clock;
  size_t photo_bytes = 2 << 20;  // set_photo's whole-body limit
  // For /healthz and /metrics; set once the server exists.
  const http::HttpServer* server = nullptr;
  TimePoint started_at{};
};

void AddAuthRoutes(http::Router& router, const ApiDeps& deps);       // /api/auth/*
void AddUserRoutes(http::Router& router, const ApiDeps& deps);       // /api/user/*
void AddAdminRoutes(http::Router& router, const ApiDeps& deps);      // /api/admin/users*
void AddMachineRoutes(http::Router& router, const ApiDeps& deps);    // machines, admin/machines
void AddContainerRoutes(http::Router& router, const ApiDeps& deps);  // images, containers
void AddTaskRoutes(http::Router& router, const ApiDeps& deps);       // /api/task/*
void AddSystemRoutes(http::Router& router, const ApiDeps& deps);     // /healthz, /metrics

}  // namespace gpuhub::api
