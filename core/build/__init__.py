"""Dockerfile builds: the pure layer the builder stands on (no container is run here).

    dockerfile    parse_dockerfile(source) -> Dockerfile (directives, global ARGs, stages);
                  parse_instruction(text) for an image's ONBUILD triggers
    instructions  one frozen value per instruction kind (From, Run, Copy, Env, Healthcheck, ...)
    expand        expand_word; BuildArgs, GlobalScope (FROM lines), StageScope (one stage:
                  apply(instruction) substitutes variables and tracks ENV/ARG; run_environment())
    dockerignore  IgnoreMatcher: excluded(path), must_descend(directory)
    context       open_directory_context / open_stream_context -> BuildContext (root, Dockerfile
                  bytes, ignore rules, `.tree`)
    sources       plan_copy(tree, sources, dest, ...) -> CopyPlan: checksum() for the cache key,
                  write_tar(out) for the layer; destination(), parse_chmod()
    archives      is_archive, add_archive_entries: ADD's local tar unpacking, confined
    globs         Go's filepath.Match syntax, shared by COPY sources and .dockerignore

A builder's loop, in outline:

    context = open_directory_context(path, dockerfile=file)
    dockerfile = parse_dockerfile(context.dockerfile)
    args = BuildArgs(build_args)
    global_scope = GlobalScope(dockerfile.global_args, args, escape=dockerfile.escape)
    for stage in stages needed for dockerfile.target(target):
        base = global_scope.expand_from(stage.from_)          # image, platform substituted
        scope = StageScope(global_scope, image_env=base_config_env)
        for instruction in stage.instructions:
            step = scope.apply(instruction)                   # substituted; ENV/ARG recorded
            COPY/ADD: dest, spelled_dir = destination(step.dest, workdir)
                      plan = plan_copy(tree, step.sources, dest, dest_is_dir=spelled_dir or exists)
                      cache key += plan.checksum(); plan.write_tar(layer)
            RUN:      environment = scope.run_environment()
    warn about args.unconsumed()

Modules are imported on demand: `import dockyard.core.build` loads nothing else.
"""
