-- Argo CD health check for serving.mlmodel.io/MLModel, from its kstatus conditions.
-- Install it in argocd-cm under resource.customizations.health.serving.mlmodel.io_MLModel (see the chart README).
local hs = {}
if obj.status == nil or obj.status.observedGeneration == nil
    or (obj.metadata.generation ~= nil and obj.status.observedGeneration < obj.metadata.generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe the latest spec"
  return hs
end
local conditions = {}
if obj.status.conditions ~= nil then
  for _, c in ipairs(obj.status.conditions) do
    conditions[c.type] = c
  end
end
local function is_true(name)
  return conditions[name] ~= nil and conditions[name].status == "True"
end
local function describe(name)
  local c = conditions[name]
  local text = c.reason or name
  if c.message ~= nil and c.message ~= "" then
    text = text .. ": " .. c.message
  end
  return text
end
if is_true("Stalled") then
  -- A failed revision (even one rolled back, with the old revision still serving) needs a person.
  hs.status = "Degraded"
  hs.message = describe("Stalled")
  return hs
end
if is_true("Reconciling") then
  hs.status = "Progressing"
  hs.message = describe("Reconciling")
  return hs
end
if is_true("Ready") then
  hs.status = "Healthy"
  hs.message = describe("Ready")
  return hs
end
hs.status = "Progressing"
if conditions["Ready"] ~= nil then
  hs.message = describe("Ready")
else
  hs.message = "Waiting for the Ready condition"
end
return hs
