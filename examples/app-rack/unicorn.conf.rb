# unicorn's settings for running under phased: the command line in
# phased-unicorn.yaml says where to listen; phased's prefork MPM gives each
# child one request at a time, so each unicorn has one worker.
worker_processes 1
timeout 60                # unicorn kills a worker stuck longer than this
preload_app false         # the app loads in the worker, after the fork
